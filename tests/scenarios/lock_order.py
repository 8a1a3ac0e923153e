"""Two threads take two locks in opposite orders; a barrier makes sure each holds its first
lock before it asks for the second, so they deadlock every time. The main thread joins them."""

import threading

first, second = threading.Lock(), threading.Lock()
both_hold_one = threading.Barrier(2)


def take(a: threading.Lock, b: threading.Lock) -> None:
    with a:
        both_hold_one.wait()
        with b:
            pass


if __name__ == "__main__":
    threads = [threading.Thread(target=take, args=(first, second)),
               threading.Thread(target=take, args=(second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
