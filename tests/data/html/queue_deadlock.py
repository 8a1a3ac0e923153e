"""Hang recorded in queue_deadlock/report.json: the parent waits for its child's result on one
queue while the child waits for the parent's input on another, and neither ever puts."""

import multiprocessing as mp


def child(inbox: mp.Queue, outbox: mp.Queue) -> None:
    item = inbox.get()
    outbox.put(item * 2)


if __name__ == "__main__":
    inbox, outbox = mp.Queue(), mp.Queue()
    proc = mp.Process(target=child, args=(inbox, outbox), name="doubler")
    proc.start()
    print(outbox.get())
    proc.join()
