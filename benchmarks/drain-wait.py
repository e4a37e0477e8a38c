"""Polls a demo app's SQLite database until it holds `target` occurrences (or `limit_ms` pass); prints how many
milliseconds that took from `started_ms` (epoch ms) and how many it holds. Used by drain.sh."""
import os, sqlite3, sys, time

db, target, started_ms, limit_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def stored():
    if not os.path.exists(db):
        return 0
    try:
        c = sqlite3.connect("file:" + db + "?mode=ro", uri=True, timeout=5)
        try:
            return c.execute("select coalesce(sum(count), 0) from app_error").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


if len(sys.argv) > 5 and sys.argv[5] == "now":
    print(stored())
    sys.exit()

n = stored()
while n < target and time.time() * 1000 - started_ms < limit_ms:
    time.sleep(0.02)
    n = stored()
print(int(time.time() * 1000 - started_ms), n)
