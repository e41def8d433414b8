"""A threaded server on 127.0.0.1 for transport tests: counts the connections it accepts and
hands each (TLS-wrapped when given a server SSLContext) to `handle` on a thread of its own."""
import socket
import ssl
import subprocess
import threading


class CountingServer:
    def __init__(self, tls=None):
        self.tls = tls
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.accepted, args=(sock,), daemon=True).start()

    def accepted(self, sock):
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                sock.close()
                return
        with sock:
            self.handle(sock)

    def handle(self, sock):
        raise NotImplementedError

    def close(self):
        self.listener.close()


def self_signed_certificate(folder):
    """(the certificate's path, a server SSLContext serving it) for 127.0.0.1."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context
