#!/usr/bin/env python3
"""http_test_server.py - a local HTTP server for the downloader tests (127.0.0.1 only).

Serves every case the downloader must classify: good JPEG/PNG images, 4xx/5xx, fail-then-
succeed endpoints (retries), stalls (low-speed timeout), a trickle that outlives the whole-
transfer timeout, oversized bodies with and without Content-Length, redirect chains (ok,
too many, to ftp:// and file://), non-image content types and X-Robots-Tag opt-outs.

Threaded (one thread per connection), bound to a free port chosen by the OS; the port is
written to --port-file (atomically) and stdout. It stops by itself after --max-seconds, so
a crashed test never leaves it running. Test images are generated here: PNG with zlib and
struct (stdlib), JPEG with Pillow (Debian python3-pil). --image-dir DIR also writes them
there so a test can compare downloaded bytes.

Endpoints (KEY is any token chosen by the test; state is kept per KEY):
  /img.jpg /img.png            good images (image/jpeg, image/png)
  /octet.jpg /noctype.jpg      the JPEG as application/octet-stream / with no Content-Type
  /html /json                  text/html, application/json bodies
  /status/N                    status N with a small HTML body
  /bigerror/N                  status N with a 256 KiB body
  /flaky/KEY/N                 first N requests 500, then the JPEG
  /ratelimit/KEY               first request 429 with Retry-After: 1, then the JPEG
  /stall-body                  headers (Content-Length 100000) + 100 bytes, then silence
  /stall-headers               reads the request, then sends nothing
  /trickle                     chunked JPEG type, 4 KiB every 0.1 s for up to 30 s
  /big-chunked/N               N bytes, chunked (no Content-Length)
  /big-cl/N                    N bytes with Content-Length
  /redirect/N                  302 chain of N hops ending at the JPEG
  /redirect-to?u=URL           302 to URL (ftp://..., file://...)
  /redirect-noai               302 carrying X-Robots-Tag: noai, to the JPEG
  /robots?tag=V[&tag=V2]       the JPEG with one X-Robots-Tag header per tag
  /404-noindex                 404 with X-Robots-Tag: noindex
  /empty                       200 image/jpeg with an empty body
  /ua                          the JPEG if the User-Agent starts with "pvlm/", else 403
  /conc/KEY                    the JPEG after 0.3 s, counting concurrent requests per KEY
  /stats/KEY                   {"max": peak concurrency, "count": requests} for KEY
  /badstatus/N                 a reply whose status line is not HTTP: 1 "NOT HTTP AT ALL",
                               2 "HTTP/1.1 2x0 OK", 3 "HTTP/9.9 200 OK"
"""
import argparse
import io
import json
import os
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STOP = threading.Event()
LOCK = threading.Lock()
COUNTS = {}  # KEY -> requests seen
CONC = {}  # KEY -> [current, max, count]


def make_png(w=32, h=24):
    rows = b"".join(
        b"\x00" + b"".join(bytes(((x * 8) & 255, (y * 10) & 255, ((x + y) * 4) & 255)) for x in range(w))
        for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_jpeg(w=48, h=32):
    from PIL import Image  # Debian python3-pil (scripts/install-deps.sh)
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 5) & 255, (y * 7) & 255, 128) for y in range(h) for x in range(w)])
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


PNG = make_png()
JPEG = make_jpeg()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies

    def log_message(self, fmt, *args):  # quiet: the C test reports what matters
        pass

    def send_body(self, status, ctype, body, extra=()):
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def jpeg(self, extra=()):
        self.send_body(200, "image/jpeg", JPEG, extra)

    def hold(self, seconds):
        STOP.wait(seconds)

    def do_GET(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self):
        u = urlsplit(self.path)
        parts = [p for p in u.path.split("/") if p]
        head = parts[0] if parts else ""
        q = parse_qs(u.query)
        if head == "img.jpg":
            self.jpeg()
        elif head == "badstatus" and len(parts) == 2:
            line = {"1": b"NOT HTTP AT ALL", "2": b"HTTP/1.1 2x0 OK", "3": b"HTTP/9.9 200 OK"}[parts[1]]
            self.wfile.write(line + b"\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\nabcd")
            self.close_connection = True
        elif head == "img.png":
            self.send_body(200, "image/png", PNG)
        elif head == "octet.jpg":
            self.send_body(200, "application/octet-stream", JPEG)
        elif head == "noctype.jpg":
            self.send_body(200, None, JPEG)
        elif head == "html":
            self.send_body(200, "text/html; charset=utf-8", b"<html><body>not an image</body></html>")
        elif head == "json":
            self.send_body(200, "application/json", b'{"not": "an image"}')
        elif head == "status" and len(parts) == 2:
            self.send_body(int(parts[1]), "text/html", b"<html>status page</html>")
        elif head == "bigerror" and len(parts) == 2:
            self.send_body(int(parts[1]), "text/html", b"x" * (256 * 1024))
        elif head == "flaky" and len(parts) == 3:
            with LOCK:
                n = COUNTS.get(parts[1], 0)
                COUNTS[parts[1]] = n + 1
            if n < int(parts[2]):
                self.send_body(500, "text/html", b"try again")
            else:
                self.jpeg()
        elif head == "ratelimit" and len(parts) == 2:
            with LOCK:
                n = COUNTS.get("rl-" + parts[1], 0)
                COUNTS["rl-" + parts[1]] = n + 1
            if n == 0:
                self.send_body(429, "text/plain", b"slow down", [("Retry-After", "1")])
            else:
                self.jpeg()
        elif head == "stall-body":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(JPEG[:100])
            self.wfile.flush()
            self.hold(30)
            self.close_connection = True
        elif head == "stall-headers":
            self.hold(30)
            self.close_connection = True
        elif head == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            t_end = time.time() + 30
            while time.time() < t_end and not STOP.is_set():
                self.wfile.write(b"1000\r\n" + b"t" * 4096 + b"\r\n")
                self.wfile.flush()
                time.sleep(0.1)
            self.close_connection = True
        elif head == "big-chunked" and len(parts) == 2:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            piece = b"b" * 65536
            while n > 0:
                k = min(n, len(piece))
                self.wfile.write(b"%x\r\n" % k + piece[:k] + b"\r\n")
                n -= k
            self.wfile.write(b"0\r\n\r\n")
        elif head == "big-cl" and len(parts) == 2:
            self.send_body(200, "image/jpeg", b"c" * int(parts[1]))
        elif head == "redirect" and len(parts) == 2:
            n = int(parts[1])
            if n > 0:
                self.send_body(302, "text/html", b"", [("Location", "/redirect/%d" % (n - 1))])
            else:
                self.jpeg()
        elif head == "redirect-to":
            self.send_body(302, "text/html", b"", [("Location", q.get("u", ["/img.jpg"])[0])])
        elif head == "redirect-noai":
            self.send_body(302, "text/html", b"", [("Location", "/img.jpg"), ("X-Robots-Tag", "noai")])
        elif head == "robots":
            self.jpeg([("X-Robots-Tag", t) for t in q.get("tag", [])])
        elif head == "404-noindex":
            self.send_body(404, "text/html", b"gone", [("X-Robots-Tag", "noindex")])
        elif head == "empty":
            self.send_body(200, "image/jpeg", b"")
        elif head == "ua":
            if self.headers.get("User-Agent", "").startswith("pvlm/"):
                self.jpeg()
            else:
                self.send_body(403, "text/plain", b"who are you")
        elif head == "conc" and len(parts) == 2:
            with LOCK:
                c = CONC.setdefault(parts[1], [0, 0, 0])
                c[0] += 1
                c[1] = max(c[1], c[0])
                c[2] += 1
            time.sleep(0.3)
            with LOCK:
                c[0] -= 1
            self.jpeg()
        elif head == "stats" and len(parts) == 2:
            with LOCK:
                c = CONC.get(parts[1], [0, 0, 0])
                body = json.dumps({"max": c[1], "count": c[2]}).encode()
            self.send_body(200, "application/json", body)
        else:
            self.send_body(404, "text/plain", b"no such endpoint")


class Server(ThreadingHTTPServer):
    daemon_threads = True  # stalled handlers never keep the process alive
    block_on_close = False
    request_queue_size = 256  # listen backlog: the default 5 drops SYNs under 32 parallel connects

    def handle_error(self, request, client_address):
        pass  # clients abort on purpose (byte cap, opt-outs, timeouts): no tracebacks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", help="write the chosen port here (atomically)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop after this long")
    ap.add_argument("--image-dir", help="also write img.jpg and img.png here")
    a = ap.parse_args()
    if a.image_dir:
        os.makedirs(a.image_dir, exist_ok=True)
        for name, data in (("img.jpg", JPEG), ("img.png", PNG)):
            with open(os.path.join(a.image_dir, name), "wb") as f:
                f.write(data)
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, a.port_file)
    print(port, flush=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        time.sleep(a.max_seconds)
    except KeyboardInterrupt:
        pass
    STOP.set()
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
