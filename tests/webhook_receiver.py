"""A webhook receiver for the tests, verifying every delivery with the Standard Webhooks
reference library (`standardwebhooks` from PyPI), not with catalogd's code.

Prints the port it listens on (127.0.0.1), then serves:
  PUT  /control/<name>  {"secret": "whsec_…", "plan": [500, 500, 200]}
       endpoint <name> verifies with the secret and answers the statuses of the plan in turn
       (200 once the plan is used up)
  POST /hooks/<name>    a delivery: verified, recorded, answered by the plan
  GET  /control/log     every delivery so far: name, webhook_id, timestamp, verified, error,
                        type, answered
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

lock = threading.Lock()
endpoints = {}
log = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length)

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if not self.path.startswith("/control/"):
            return self.answer(404, {})
        name = self.path[len("/control/"):]
        config = json.loads(self.body())
        with lock:
            endpoints[name] = {"secret": config["secret"], "plan": list(config.get("plan", []))}
        self.answer(200, {})

    def do_GET(self):
        if self.path != "/control/log":
            return self.answer(404, {})
        with lock:
            self.answer(200, list(log))

    def do_POST(self):
        if not self.path.startswith("/hooks/"):
            return self.answer(404, {})
        name = self.path[len("/hooks/"):]
        data = self.body()
        headers = {k: v for k, v in self.headers.items()}
        with lock:
            endpoint = endpoints.get(name)
        record = {
            "name": name,
            "webhook_id": self.headers.get("webhook-id"),
            "timestamp": self.headers.get("webhook-timestamp"),
            "verified": False,
            "error": None,
            "type": None,
        }
        if endpoint is None:
            record["error"] = "no secret set for this endpoint"
        else:
            try:
                payload = Webhook(endpoint["secret"]).verify(data, headers)
                record["verified"] = True
                record["type"] = payload.get("type")
                record["payload"] = payload
            except Exception as e:  # any refusal is recorded for the test to report
                record["error"] = f"{type(e).__name__}: {e}"
        with lock:
            plan = endpoint["plan"] if endpoint else []
            status = plan.pop(0) if plan else 200
            record["answered"] = status
            log.append(record)
        self.answer(status, {"received": record["webhook_id"], "status": status})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    # The test closes stdin (or dies): stop then.
    threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
