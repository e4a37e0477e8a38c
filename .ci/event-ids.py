"""The README promises one event id per log event (its range, e.g. 1001-1033): every LoggerMessage event of the
shell (src/Web/Log.fs) and the facade (src/CSharpFacade/FacadeLog.cs) has an id and a name of its own, and the
README's range is exactly the ids in use. Prints the findings; exits 1 when one fails."""
import re, sys
from collections import Counter

root = sys.argv[1] if len(sys.argv) > 1 else "."
events = []
fs = open(f"{root}/src/Web/Log.fs").read()
events += [(int(i), n, "Log.fs") for i, n in re.findall(r'EventId\(\s*(\d+),\s*"(\w+)"', fs)]
cs = open(f"{root}/src/CSharpFacade/FacadeLog.cs").read()
events += [(int(i), n, "FacadeLog.cs") for i, n in re.findall(r'EventId\s*=\s*(\d+),\s*EventName\s*=\s*"(\w+)"', cs)]
problems = []
defined = len(re.findall(r"LoggerMessage\.Define[<(]", fs)) + len(re.findall(r"\[LoggerMessage\(", cs))
if defined != len(events):
    problems.append(f"{defined} events defined, {len(events)} with an id and a name")
for i, c in Counter(i for i, _, _ in events).items():
    if c > 1:
        problems.append(f"event id {i} is used {c} times")
for n, c in Counter(n for _, n, _ in events).items():
    if c > 1:
        problems.append(f"event name {n} is used {c} times")
ids = sorted(i for i, _, _ in events)
readme = open(f"{root}/README.md").read()
m = re.search(r"one event id per event \((\d+)-(\d+)", readme)
if not m:
    problems.append("the README states no event id range")
elif (int(m.group(1)), int(m.group(2))) != (ids[0], ids[-1]):
    problems.append(f"the README says {m.group(1)}-{m.group(2)}, the ids in use are {ids[0]}-{ids[-1]}")
missing = sorted(set(range(ids[0], ids[-1] + 1)) - set(ids))
for p in problems:
    print(p)
print(f"log events: {len(events)} ({ids[0]}-{ids[-1]}{', unused: ' + ', '.join(map(str, missing)) if missing else ''}), {len(problems)} problems")
sys.exit(1 if problems else 0)
