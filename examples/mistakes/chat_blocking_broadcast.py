"""A chat room that sends to every member in turn, with a blocking sendall, under one lock.

What is wrong: ``sendall`` to a member blocks while that member's socket buffers
are full, that is, while the member is not reading (a frozen laptop, a client
stuck on input(), a slow link). This room broadcasts to everyone in turn while
holding its lock, so one member who stops reading stops the whole room: nobody
else hears anything, and the speaker's own thread waits too. With a few people
typing, the buffers never fill and all looks fine.

The fix: never block on one member on the room's behalf. Queue each member's
output with a limit and drop a member whose queue passes it (what services/chat.py
does with asyncio), or give each member a writer thread with a bounded queue.

    python3 examples/mistakes/chat_blocking_broadcast.py --port 5050
    python3 -m clients.check chat 127.0.0.1:5050
"""

import argparse
import contextlib
import socket
import threading

GREETING = "Welcome to my chat room!"
COMMANDS = "/nick NAME, /who, /msg NICK TEXT, /quit, /help"

members: dict[socket.socket, str] = {}
lock = threading.Lock()
guests = 0


def send_to(conn: socket.socket, text: str) -> None:
    conn.sendall((text + "\n").encode())


def broadcast(text: str, *, besides: socket.socket) -> None:
    with lock:
        for conn in list(members):
            if conn is besides:
                continue
            with contextlib.suppress(OSError):  # a member who is gone: its own thread removes it
                send_to(conn, text)  # WRONG: blocks the room while this member does not read


def find(nick: str) -> socket.socket | None:
    with lock:
        return next((conn for conn, name in members.items() if name.lower() == nick.lower()), None)


def command(conn: socket.socket, text: str) -> bool:
    """Act on one command; False when the member quits."""
    name, _, rest = text.partition(" ")
    if name == "/nick":
        if find(rest) is not None:
            send_to(conn, f"error: nick {rest} is taken")
            return True
        old = members[conn]
        with lock:
            members[conn] = rest
        send_to(conn, f"* you are now {rest}")
        broadcast(f"* {old} is now {rest}", besides=conn)
    elif name == "/who":
        with lock:
            nicks = sorted(members.values(), key=str.lower)
        send_to(conn, f"* here ({len(nicks)}): {', '.join(nicks)}")
    elif name == "/msg":
        nick, _, words = rest.partition(" ")
        other = find(nick)
        if other is None:
            send_to(conn, f"error: no such nick: {nick}")
        else:
            send_to(other, f"*{members[conn]}* {words}")
            send_to(conn, f"-> *{nick}* {words}")
    elif name == "/quit":
        send_to(conn, f"* bye, {members[conn]}")
        return False
    else:
        send_to(conn, f"* commands: {COMMANDS}")
    return True


def handle(conn: socket.socket) -> None:
    global guests
    with lock:
        guests += 1
        nick = f"guest{guests}"
        others = sorted(members.values())
    here = f"* here: {', '.join(others)}" if others else "* nobody else is here yet"
    reason = "disconnected"
    try:
        send_to(conn, f"{GREETING}\n* you are {nick}; pick a nick with /nick NAME\n* commands: {COMMANDS}\n{here}")
        with lock:  # seated after its greeting: no one else's news may come before it
            members[conn] = nick
        broadcast(f"* {nick} joined", besides=conn)
        with conn.makefile("rb") as lines:
            for line in lines:
                text = line.decode("utf-8", errors="replace").strip()
                if text.startswith("/"):
                    if not command(conn, text):
                        reason = "quit"
                        break
                elif text:
                    broadcast(f"<{members[conn]}> {text}", besides=conn)
    except OSError:
        pass
    finally:
        with lock:
            nick = members.pop(conn, nick)
        conn.close()
        broadcast(f"* {nick} left ({reason})", besides=conn)


def main() -> None:
    parser = argparse.ArgumentParser(description="chat room with a blocking broadcast (wrong on purpose)")
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    server.listen(5)
    print(f"ready port={server.getsockname()[1]}", flush=True)
    while True:
        conn, _address = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
