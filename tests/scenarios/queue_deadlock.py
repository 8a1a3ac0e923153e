"""The deadlock from multiprocessing's docs: the child put 10 MB on a Queue, the parent joins it
before get(); the child cannot exit until its feeder thread has flushed the data."""

import multiprocessing as mp


def produce(queue):
    queue.put(b"x" * 10_000_000)


if __name__ == "__main__":
    queue = mp.get_context("spawn").Queue()
    child = mp.get_context("spawn").Process(target=produce, args=(queue,))
    child.start()
    child.join()  # deadlock: must get() first
    queue.get()
