"""No bug: a consumer polls a Queue with get(timeout=1) in a loop; a producer puts one item every
EVERY seconds, COUNT times, then a None that ends the consumer."""

import multiprocessing as mp
import queue
import sys
import time


def produce(items, count, every):
    for n in range(count):
        time.sleep(every)
        items.put(n)
    items.put(None)


if __name__ == "__main__":
    count, every = int(sys.argv[1]), float(sys.argv[2])
    context = mp.get_context("spawn")
    items = context.Queue()
    producer = context.Process(target=produce, args=(items, count, every))
    producer.start()
    while True:
        try:
            if items.get(timeout=1) is None:
                break
        except queue.Empty:
            continue
    producer.join()
