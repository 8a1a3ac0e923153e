"""No bug at all: the program sleeps in user code past the deadline."""

import time


def train_for_a_long_time():
    time.sleep(3600)


if __name__ == "__main__":
    train_for_a_long_time()
