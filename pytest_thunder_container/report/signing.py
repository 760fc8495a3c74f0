"""Ed25519 keys of a report's signature: PEM PKCS#8 private keys, PEM SubjectPublicKeyInfo public.

The fingerprint of a key is "sha256:" + the SHA-256 of its public key in DER
SubjectPublicKeyInfo form: `openssl pkey -pubin -in pub.pem -outform DER | sha256sum`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pytest_thunder_container.errors import ThunderContainerError

ALGORITHM = "Ed25519"
KEYGEN_FIX = (
    "make a pair with `thunder-container report keygen KEY.pem PUB.pem` or "
    "`openssl genpkey -algorithm ed25519 -out KEY.pem` then "
    "`openssl pkey -in KEY.pem -pubout -out PUB.pem`"
)


class KeyFileError(ThunderContainerError):
    """A key file that can't be used: missing, not PEM, not Ed25519, encrypted."""


def fingerprint(public_key: Ed25519PublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class Signer:
    """A private key that signs reports, and the fingerprint of its public half."""

    key: Ed25519PrivateKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public_key())

    def sign(self, data: bytes) -> str:
        """The signature of data, base64."""
        return base64.b64encode(self.key.sign(data)).decode("ascii")


@dataclass(frozen=True)
class PublicKey:
    """A public key that checks report signatures."""

    key: Ed25519PublicKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def verifies(self, data: bytes, signature: str) -> bool:
        try:
            self.key.verify(base64.b64decode(signature, validate=True), data)
        except (InvalidSignature, ValueError):
            return False
        return True


def load_signer(path: Path, *, what: str) -> Signer:
    """The Ed25519 private key in `path` (PEM PKCS#8, unencrypted); `what` names it in errors."""
    data = _read(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"{what}={path}: the key is encrypted (fix: give an unencrypted PEM PKCS#8 key, "
            f"e.g. `openssl pkey -in {path} -out plain.pem`)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise KeyFileError(
            f"{what}={path}: not a PEM private key ({_first_line(error)}) (fix: {KEYGEN_FIX})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{what}={path}: not an Ed25519 key but {type(key).__name__} (fix: {KEYGEN_FIX})"
        )
    return Signer(key)


def load_public_key(path: Path, *, what: str) -> PublicKey:
    """The Ed25519 public key in `path` (PEM SubjectPublicKeyInfo)."""
    data = _read(path, what)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise KeyFileError(
            f"{what}={path}: not a PEM public key ({_first_line(error)}) "
            f"(fix: `openssl pkey -in KEY.pem -pubout -out {path}`)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{what}={path}: not an Ed25519 key but {type(key).__name__}")
    return PublicKey(key)


def generate_keys(private: Path, public: Path) -> str:
    """A new key pair: the private key readable by its owner only. Returns the fingerprint."""
    for path in (private, public):
        if path.exists():
            raise KeyFileError(f"{path} exists: not overwritten (fix: choose another name)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    handle = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return fingerprint(key.public_key())


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{what}={path}: {error.strerror or error}") from None


def _first_line(error: Exception) -> str:
    """The library's reason without its pointer to further reading."""
    return (str(error).splitlines() or [type(error).__name__])[0].split(" See ")[0]
