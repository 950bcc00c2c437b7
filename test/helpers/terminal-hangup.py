"""Runs the gateway process with its stdout and stderr on a pseudo-terminal, as when an operator
starts it in a terminal, closes that terminal, then sends a request and SIGTERM. Prints one JSON
line: the port, the status of each request made after the hang-up (0 for a refused connection),
whether the process still ran then, and how it ended after SIGTERM ("stuck" when it did not).
Node itself has no pseudo-terminal, hence Python (Debian's python3, which the tests install)."""
import json, os, pty, re, signal, subprocess, sys, time, urllib.request

node, loader, main, workdir = sys.argv[1:5]
master, slave = pty.openpty()
env = dict(os.environ, HOST='127.0.0.1', PORT='0')
child = subprocess.Popen([node, '--import', loader, main], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=workdir)
os.close(slave)
seen, port, deadline = b'', None, time.time() + 30
while port is None and time.time() < deadline:
    try:
        seen += os.read(master, 4096)
    except OSError:
        break
    found = re.search(rb'listening at http://127\.0\.0\.1:(\d+)', seen)
    port = int(found.group(1)) if found else None
if port is None:
    child.kill()
    print(json.dumps({'port': None}))
    sys.exit(0)
os.close(master)  # the terminal is gone: every later write to it fails (EIO)
statuses = []
for _ in range(3):
    try:
        statuses.append(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=5).status)
    except Exception:
        statuses.append(0)
    time.sleep(0.2)
alive = child.poll() is None
child.send_signal(signal.SIGTERM)
try:
    ended = child.wait(timeout=10)
except subprocess.TimeoutExpired:
    ended = 'stuck'
    child.kill()
print(json.dumps({'port': port, 'statuses': statuses, 'aliveAfterHangup': alive, 'ended': ended}))
