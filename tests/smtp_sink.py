"""A real SMTP server for the tests (aiosmtpd from PyPI), with a control API over HTTP.

Prints "<smtp port> <control port>" (both on 127.0.0.1), then serves SMTP, and over HTTP:
  GET /messages      every message accepted so far: mail_from, rcpt_tos, data (the raw text),
                     and as Python's `email` package reads it: subject, message_id,
                     list_unsubscribe, list_unsubscribe_post, text and html (decoded parts)
  PUT /mode          {"down": true} answers every MAIL FROM with 421 (the service is not
                     available: what a client meets during an outage) until {"down": false};
                     {"refused": N} answers N connections' MAIL FROM with 421 and then accepts
  GET /refusals      how many MAIL FROMs were refused so far
Stops when its stdin closes.
"""

import asyncio
import email
import email.policy
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP

lock = threading.Lock()
messages = []
state = {"down": False, "refuse": 0, "refusals": 0}


class Sink:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with lock:
            if state["down"] or state["refuse"] > 0:
                if state["refuse"] > 0:
                    state["refuse"] -= 1
                state["refusals"] += 1
                return "421 4.3.2 Service not available, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.content.decode("utf-8", errors="replace"),
        }
        try:
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            text = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
            record.update(
                {
                    "subject": str(msg["subject"]),
                    "message_id": str(msg["message-id"]),
                    "list_unsubscribe": msg["list-unsubscribe"] and str(msg["list-unsubscribe"]),
                    "list_unsubscribe_post": msg["list-unsubscribe-post"]
                    and str(msg["list-unsubscribe-post"]),
                    "text": text.get_content() if text is not None else None,
                    "html": html.get_content() if html is not None else None,
                }
            )
        except Exception as e:  # reported to the test, which fails on it
            record["parse_error"] = f"{type(e).__name__}: {e}"
        with lock:
            messages.append(record)
        return "250 Message accepted for delivery"


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            if self.path == "/messages":
                return self.answer(200, list(messages))
            if self.path == "/refusals":
                return self.answer(200, state["refusals"])
        self.answer(404, {})

    def do_PUT(self):
        if self.path != "/mode":
            return self.answer(404, {})
        length = int(self.headers.get("content-length") or 0)
        mode = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            if "down" in mode:
                state["down"] = bool(mode["down"])
            if "refused" in mode:
                state["refuse"] = int(mode["refused"])
        self.answer(200, {})


async def serve():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="sink.test", enable_SMTPUTF8=True), sock=sock
    )
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(sock.getsockname()[1], control.server_address[1], flush=True)
    # The test closes stdin (or dies): stop then.
    await loop.run_in_executor(None, sys.stdin.read)
    control.shutdown()
    server.close()


if __name__ == "__main__":
    asyncio.run(serve())
