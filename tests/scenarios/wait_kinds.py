"""Three waits the kernel tells apart: the main thread sleeps (time.sleep), one thread waits on
an Event with no timeout, another on an Event with a 300 s timeout."""

import threading
import time

if __name__ == "__main__":
    threading.Thread(target=threading.Event().wait, name="endless", daemon=True).start()
    threading.Thread(target=threading.Event().wait, args=(300,), name="timed",
                     daemon=True).start()
    time.sleep(300)
