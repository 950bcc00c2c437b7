"""A throw-away self-signed certificate, so Nginx can start before Let's Encrypt issued the real one.

Run inside the certbot container (it has Python and the cryptography package, which certbot itself
uses) by deploy/bootstrap-cert.sh:  python3 - /etc/letsencrypt/live/<domain> < temporary-cert.py
Writes privkey.pem and fullchain.pem, the names Nginx's configuration expects. Valid for one day.
"""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def main(live_dir: str) -> None:
    os.makedirs(live_dir, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "temporary-bootstrap-certificate")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(live_dir, "privkey.pem")
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(os.path.join(live_dir, "fullchain.pem"), "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: temporary-cert.py <directory>")
    main(sys.argv[1])
