"""A hang whose frames hold secrets in locals: `--locals` must redact them."""

import time


def login_and_wait(api_key, retries):
    WANDB_API_KEY = "local-" + api_key
    session_token = "ghp_" + "a" * 36
    time.sleep(3600)
    return WANDB_API_KEY, session_token


if __name__ == "__main__":
    login_and_wait("s3cr3t-value-123", retries=3)
