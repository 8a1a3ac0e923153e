"""Hang recorded in queue_deadlock/report.json: the parent waits for its child's result on one
queue while the child waits for the parent's input on another, and neither ever puts."""

import multiprocessing as mp


def double(inbox: mp.Queue, outbox: mp.Queue) -> None:
    outbox.put(inbox.get() * 2)


if __name__ == "__main__":
    context = mp.get_context("spawn")
    inbox, outbox = context.Queue(), context.Queue()
    child = context.Process(target=double, args=(inbox, outbox), name="doubler")
    child.start()
    print(outbox.get())  # deadlock: the parent should have put into inbox first
    child.join()
