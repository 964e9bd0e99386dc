"""A real SMTP server for the tests (aiosmtpd from PyPI), with a control API over HTTP.

With --tls, the server requires STARTTLS (a certificate for 127.0.0.1 from a throwaway CA made
with openssl) and a login (user "mailer", password "s3cret-pass", only after STARTTLS); it
prints the CA's PEM file as a third word.

Prints "<smtp port> <control port>" (both on 127.0.0.1), then serves SMTP, and over HTTP:
  GET /messages      every message accepted so far: mail_from, rcpt_tos, data (the raw text),
                     and as Python's `email` package reads it: subject, message_id,
                     list_unsubscribe, list_unsubscribe_post, text and html (decoded parts);
                     tls (whether STARTTLS was used) and login (who authenticated)
  PUT /mode          {"down": true} answers every MAIL FROM with 421 (the service is not
                     available: what a client meets during an outage) until {"down": false};
                     {"refused": N} answers N connections' MAIL FROM with 421 and then accepts
  GET /refusals      how many MAIL FROMs were refused so far
Stops when its stdin closes.
"""

import asyncio
import email
import os
import shutil
import ssl
import subprocess
import tempfile
import email.policy
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

LOGIN = (b"mailer", b"s3cret-pass")

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
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "tls": session.ssl is not None,
            "login": login,
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


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == LOGIN
    return AuthResult(success=ok, auth_data=auth_data)


def certificates():
    """A CA and a certificate for 127.0.0.1 it signed; returns (ca.pem, cert.pem, key.pem)."""
    d = tempfile.mkdtemp(prefix="smtp-sink-")
    path = lambda name: os.path.join(d, name)  # noqa: E731
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sink test CA",
        "-keyout", path("ca.key"), "-out", path("ca.pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", path("key.pem"), "-out", path("cert.csr"))
    with open(path("ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", path("cert.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", path("ext"), "-out", path("cert.pem"))
    return path("ca.pem"), path("cert.pem"), path("key.pem")


async def serve():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    extra = []
    options = {}
    tls_dir = None
    if "--tls" in sys.argv:
        ca, cert, key = certificates()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options = dict(
            tls_context=context,
            require_starttls=True,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=True,
        )
        extra = [ca]
        tls_dir = os.path.dirname(ca)
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="sink.test", enable_SMTPUTF8=True, **options), sock=sock
    )
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(sock.getsockname()[1], control.server_address[1], *extra, flush=True)
    # The test closes stdin (or dies): stop then.
    await loop.run_in_executor(None, sys.stdin.read)
    control.shutdown()
    server.close()
    if tls_dir:
        shutil.rmtree(tls_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(serve())
