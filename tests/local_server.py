"""A 127.0.0.1 HTTP server for download tests (no external network)."""

import contextlib
import http.server
import threading


@contextlib.contextmanager
def serve(files: dict[str, bytes], truncated: tuple[str, ...] = ()):
    """Serves `files` by path on 127.0.0.1; yields `(base_url, requests)`.

    Paths in `truncated` announce their full `Content-Length` but send
    only half of their bytes, as a dropped connection would. Unknown paths
    get a 404. `requests` lists the paths asked for, in order.
    """
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in truncated:
                body = body[: len(body) // 2]
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
