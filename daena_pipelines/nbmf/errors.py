"""The codec's own errors: every way decoding can fail is one of these (never a foreign exception)."""


class NbmfError(ValueError):
    """Base of every NBMF decoding/encoding failure."""


class EnvelopeError(NbmfError):
    """Not a decodable NBMF envelope (version, class, flags, lengths; truncated or trailing bytes)."""


class SignatureMismatch(EnvelopeError):
    """The envelope's header and decoded content do not hash to its SHA-256: corrupt or tampered."""


class UnknownDictionary(NbmfError, LookupError):
    """The envelope names a dictionary the store does not hold (or whose file fails its SHA-256)."""
