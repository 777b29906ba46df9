#!/usr/bin/env python3
"""A STAND-IN ACME server for tests/e2e/acme_client.sh — not a CA.

Pebble 2.4 (Debian bookworm's) has no ARI (RFC 9773 renewalInfo, `replaces`), no
profiles and never sends Retry-After. This script serves just enough for certsync's ACME
client to exercise those paths against real HTTPS:

  GET  /dir                  a directory with renewalInfo, meta.profiles, caaIdentities
  HEAD /nonce                Replay-Nonce
  POST /order                newOrder: echoes identifiers, profile and replaces; answers
                             the very first POST with badNonce (so the client must retry
                             with the nonce of the error response); a second order with
                             the same `replaces` gets 409 alreadyReplaced; the order comes
                             back "processing" with Retry-After: 2 (86400 when the first
                             name starts with "slow.", to check the client's upper bound)
  POST /order/<n>            POST-as-GET: the order, now "valid"
  GET  /renewal-info/<id>    suggestedWindow; the 1st request gets Retry-After in seconds
                             (21600), the 2nd an HTTP-date one hour ahead, the 3rd an
                             invalid window (end before start)

JWS signatures are NOT verified (Pebble does that for real in the same test); only the
protected header's shape (kid, nonce, url) is checked. Usage:
  acme_standin.py PORT CERT KEY
"""
import base64
import email.utils
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, CERT, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
BASE = f"https://127.0.0.1:{PORT}"

lock = threading.Lock()
state = {"nonce": 0, "issued": set(), "posts": 0, "bad_nonce": None, "orders": {},
         "replaced": set(), "ari": 0}


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def log(msg):
    sys.stderr.write(f"standin: {msg}\n")
    sys.stderr.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log(fmt % args)

    def new_nonce(self):
        with lock:
            state["nonce"] += 1
            n = f"standin-nonce-{state['nonce']}"
            state["issued"].add(n)
        return n

    def reply(self, code, body=None, headers=None, ctype="application/json"):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def problem(self, code, typ, detail, headers=None):
        self.reply(code, {"type": "urn:ietf:params:acme:error:" + typ, "detail": detail,
                          "status": code}, headers, "application/problem+json")

    def do_HEAD(self):
        if self.path == "/nonce":
            self.reply(200, None, {"Replay-Nonce": self.new_nonce(), "Cache-Control": "no-store"})
        else:
            self.reply(404)

    def do_GET(self):
        if self.path == "/dir":
            self.reply(200, {
                "newNonce": BASE + "/nonce", "newAccount": BASE + "/account",
                "newOrder": BASE + "/order", "revokeCert": BASE + "/revoke",
                "keyChange": BASE + "/key-change", "renewalInfo": BASE + "/renewal-info",
                "meta": {"profiles": {"classic": "the default", "tlsserver": "45 days"},
                         "caaIdentities": ["standin.test"], "externalAccountRequired": False}})
            return
        if self.path.startswith("/renewal-info/"):
            certid = self.path[len("/renewal-info/"):]
            if "." not in certid:
                self.problem(400, "malformed", "not a CertID")
                return
            with lock:
                state["ari"] += 1
                k = state["ari"]
            now = int(time.time())
            start, end = now + 86400, now + 2 * 86400
            if k == 1:
                ra = "21600"
            elif k == 2:
                ra = email.utils.formatdate(now + 3600, usegmt=True)
            else:
                ra = "21600"
                start, end = end, start  # invalid: end before start
            fmt = "%Y-%m-%dT%H:%M:%SZ"
            log(f"renewalInfo #{k} for {certid}, Retry-After: {ra}")
            self.reply(200, {"suggestedWindow": {"start": time.strftime(fmt, time.gmtime(start)),
                                                 "end": time.strftime(fmt, time.gmtime(end))},
                             "explanationURL": BASE + "/docs/ari"}, {"Retry-After": ra})
            return
        self.reply(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        prot = json.loads(b64u_decode(body["protected"]))
        payload = b64u_decode(body["payload"]) if body["payload"] else b""
        fresh = {"Replay-Nonce": self.new_nonce()}
        if "kid" not in prot or "jwk" in prot or prot.get("url") != BASE + self.path:
            self.problem(400, "malformed", "bad protected header", fresh)
            return
        with lock:
            state["posts"] += 1
            first = state["posts"] == 1
            nonce_ok = prot.get("nonce") in state["issued"]
            state["issued"].discard(prot.get("nonce"))
            if state["bad_nonce"] and prot.get("nonce") == state["bad_nonce"]:
                log("badnonce-retry-used-error-nonce")
                state["bad_nonce"] = None
        if first or not nonce_ok:
            with lock:
                state["bad_nonce"] = fresh["Replay-Nonce"]
            log(f"rejecting nonce {prot.get('nonce')} with badNonce")
            self.problem(400, "badNonce", "stand-in rejects this nonce", fresh)
            return
        if self.path == "/order":
            req = json.loads(payload)
            ids = req.get("identifiers", [])
            rep = req.get("replaces")
            with lock:
                if rep and rep in state["replaced"]:
                    dup = True
                else:
                    dup = False
                    if rep:
                        state["replaced"].add(rep)
                    n = len(state["orders"]) + 1
                    order = {"status": "processing", "identifiers": ids, "authorizations": [],
                             "finalize": f"{BASE}/finalize/{n}",
                             "expires": "2099-01-01T00:00:00Z"}
                    if req.get("profile"):
                        order["profile"] = req["profile"]
                    if rep:
                        order["replaces"] = rep
                    state["orders"][n] = order
            if dup:
                self.problem(409, "alreadyReplaced", f"certificate {rep} is already replaced",
                             fresh)
                return
            log(f"newOrder #{n}: {json.dumps(req, sort_keys=True)}")
            slow = ids and ids[0].get("value", "").startswith("slow.")
            self.reply(201, order, dict(fresh, **{"Location": f"{BASE}/order/{n}",
                                                  "Retry-After": "86400" if slow else "2"}))
            return
        if self.path.startswith("/order/") and payload == b"":
            n = int(self.path.rsplit("/", 1)[1])
            with lock:
                order = state["orders"].get(n)
                if order:
                    order["status"] = "valid"
                    order["certificate"] = f"{BASE}/cert/{n}"
            if not order:
                self.problem(404, "malformed", "no such order", fresh)
                return
            self.reply(200, order, fresh)
            return
        self.problem(404, "malformed", "not served by the stand-in", fresh)


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
log(f"listening on {BASE}")
server.serve_forever()
