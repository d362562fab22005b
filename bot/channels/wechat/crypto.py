"""WeChat's and WeCom's message signatures and encryption (one scheme, two receivers).

- Signature: hex SHA-1 of the sorted, concatenated token, timestamp and nonce
  (safe mode adds the ``Encrypt`` field to the list: ``msg_signature``).
- Safe mode: AES-256-CBC, key = base64 of EncodingAESKey (43 characters, one
  ``=`` appended), IV = the key's first 16 bytes, PKCS#7 padding to a 32-byte
  block as WeChat does; plaintext = 16 random bytes, the XML's length as 4
  bytes big-endian, the XML, then the receiver id, which must be ours.
- The receiver id is the Official Account's AppID, or for WeCom (WeChat
  Customer Service) the corp id. WeCom always encrypts, and signs only with
  ``msg_signature`` (no plain ``signature``); its URL check sends ``echostr``
  encrypted, to be answered decrypted (`open_envelope`).

The cipher comes from the ``cryptography`` package; nothing here is a
hand-made primitive, only WeChat's framing around it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.security.tokens import same_secret

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


class CryptoError(ValueError):
    """A message that cannot be ours: bad padding, length, or receiver id."""


class WrongReceiver(CryptoError):
    """Decrypted fine, but for another AppID / corp id."""


class BadSignature(CryptoError):
    """`msg_signature` does not match the encrypted text."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(expected: str | None, *parts: str) -> bool:
    # As bytes: a stranger's non-ASCII `signature` is simply wrong, not a TypeError.
    return same_secret(expected.lower() if expected else None, signature(*parts))


def aes_key(encoding_aes_key: str, setting: str = "WECHAT_AES_KEY") -> bytes:
    """The 32-byte key behind an EncodingAESKey; ValueError (naming `setting`) if it is not one."""
    if len(encoding_aes_key) != 43:
        raise ValueError(f"{setting} (EncodingAESKey) must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{setting} is not valid base64") from exc
    if len(key) != 32:
        raise ValueError(f"{setting} must decode to 32 bytes")
    return key


class MessageCrypto:
    """Encryption for one receiver: `appid` is the AppID, or WeCom's corp id."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        self.token = token
        self.key = aes_key(encoding_aes_key)
        self.appid = appid

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypted: str) -> str:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except binascii.Error as exc:
            raise CryptoError("Encrypt is not base64") from exc
        if not data or len(data) % 16:
            raise CryptoError("Encrypt is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CryptoError("too short")
        (length,) = struct.unpack(">I", plain[16:20])
        body, appid = plain[20 : 20 + length], plain[20 + length :]
        if len(body) != length:
            raise CryptoError("length field larger than the message")
        if not hmac.compare_digest(appid, self.appid.encode()):
            raise WrongReceiver("the message is for another AppID / corp id")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CryptoError("the message is not UTF-8") from exc

    def encrypt(self, xml: str, nonce_bytes: bytes | None = None) -> str:
        body = xml.encode("utf-8")
        plain = (nonce_bytes or os.urandom(16)) + struct.pack(">I", len(body))
        plain += body + self.appid.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def open_envelope(
        self, msg_signature: str | None, timestamp: str, nonce: str, encrypt: str
    ) -> str:
        """The plaintext of `encrypt` once its `msg_signature` checks out.

        BadSignature, WrongReceiver or CryptoError otherwise. WeCom's callbacks
        (and its URL check's ``echostr``) arrive this way.
        """
        if not signature_ok(msg_signature, self.token, timestamp, nonce, encrypt):
            raise BadSignature("`msg_signature` does not match")
        return self.decrypt(encrypt)
