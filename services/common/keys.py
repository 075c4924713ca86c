"""Asymmetric signing keys, their JWK form and kid (RFC 7638 thumbprint)."""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or (value.bit_length() + 7) // 8, "big")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The minimal public JWK members, in the order RFC 7638 hashes them."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(_int_bytes(numbers.x, 32)),
            "y": b64url(_int_bytes(numbers.y, 32)),
        }
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        return {
            "e": b64url(_int_bytes(rsa_numbers.e)),
            "kty": "RSA",
            "n": b64url(_int_bytes(rsa_numbers.n)),
        }
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def thumbprint(jwk: dict[str, str]) -> str:
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def algorithm_for(public_key: PublicKey) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ES256"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    return "EdDSA"


@dataclass(frozen=True)
class SigningKey:
    private_key: PrivateKey
    kid: str
    algorithm: str

    @classmethod
    def from_pem(cls, pem: bytes) -> "SigningKey":
        private_key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(
            private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ValueError("unsupported private key type")
        public = private_key.public_key()
        return cls(private_key, thumbprint(public_jwk(public)), algorithm_for(public))

    @classmethod
    def from_file(cls, path: Path) -> "SigningKey":
        return cls.from_pem(path.read_bytes())

    def public_jwk(self) -> dict[str, str]:
        return {
            **public_jwk(self.private_key.public_key()),
            "kid": self.kid,
            "alg": self.algorithm,
            "use": "sig",
        }


def derived_secret(key: SigningKey, purpose: str) -> bytes:
    """A secret for one of the service's own HMACs, derived from its private key: nothing more to
    mount, and every replica (they share the key) derives the same. A new key gives a new one."""
    der = key.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return hmac.new(der, purpose.encode(), hashlib.sha256).digest()


def public_jwk_from_pem_file(path: Path) -> dict[str, str]:
    """A retired or upcoming key, published in the JWKS but never used to sign."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return SigningKey.from_pem(data).public_jwk()
    public = serialization.load_pem_public_key(data)
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ValueError("unsupported public key type")
    jwk = public_jwk(public)
    return {**jwk, "kid": thumbprint(jwk), "alg": algorithm_for(public), "use": "sig"}


def public_pem(private_pem: bytes) -> bytes:
    """The public half of a private key, as a SubjectPublicKeyInfo PEM (safe to hand out)."""
    private_key = SigningKey.from_pem(private_pem).private_key
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwks(active: SigningKey, extra_public_files: list[Path] | tuple[Path, ...] = ()) -> dict[str, Any]:
    keys = [active.public_jwk()]
    keys += [public_jwk_from_pem_file(path) for path in extra_public_files]
    return {"keys": keys}


def generate_private_pem(kind: str) -> bytes:
    """A new private key in PKCS#8 PEM: kind is 'ec' (ES256) or 'rsa' (RS256)."""
    key: PrivateKey
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
