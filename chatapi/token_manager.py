"""flask-jwt-extended's JWTManager, reading each token once. Its own decode parses a token
three times (the claims and the header unverified, for the key callback, then the whole token
verified): a tenth of the CPU of the cheapest authenticated request. This one verifies the
token in one PyJWT call, then asks `claims_check_loader`'s callback whether the claims, as
sent, are shaped as issued (a token whose claims are not is invalid: 401), then fills in what
flask-jwt-extended fills in (a missing `type`, `fresh`, `jti`). It overrides the one method
through which flask-jwt-extended decodes, `_decode_jwt_from_config`, as written in 4.7.1
(requirements.txt pins it); tests/test_token_manager.py counts the parses and would fail if
another version stopped calling it. The key is flask-jwt-extended's configured one: a
`decode_key_loader` is not asked."""
from hmac import compare_digest

import jwt
from flask_jwt_extended import JWTManager
from flask_jwt_extended.config import config
from flask_jwt_extended.exceptions import CSRFError, JWTDecodeError


class OneParseJWTManager(JWTManager):
    def __init__(self, app=None, add_context_processor=False):
        self._claims_check = None
        super().__init__(app, add_context_processor)

    def claims_check_loader(self, callback):
        """`callback(claims)` → whether the verified claims, as sent, are shaped as issued."""
        self._claims_check = callback
        return callback

    def _decode_jwt_from_config(self, encoded_token, csrf_value=None, allow_expired=False):
        options = {"verify_aud": config.decode_audience is not None,
                   "verify_sub": config.verify_sub}
        if allow_expired:
            options["verify_exp"] = False
        try:
            claims = jwt.decode(encoded_token, config.decode_key,
                                algorithms=config.decode_algorithms,
                                audience=config.decode_audience, issuer=config.decode_issuer,
                                leeway=config.leeway, options=options)
        except jwt.ExpiredSignatureError as error:
            # What flask-jwt-extended hands its expired-token callback; a token shaped
            # otherwise than issued is invalid before it is expired.
            error.jwt_header = jwt.get_unverified_header(encoded_token)
            error.jwt_data = self._decode_jwt_from_config(encoded_token, csrf_value, True)
            raise
        except (TypeError, ValueError, OverflowError, RecursionError) as error:
            # What PyJWT lets through: int() of a signed token's `exp` or `iat` that is null, a
            # list or Infinity; and, before any signature is checked, a header nested past the
            # JSON parser's depth, which anyone can send.
            raise JWTDecodeError("not a token of ours") from error
        if self._claims_check is not None and not self._claims_check(claims):
            raise JWTDecodeError("claims not as issued")
        if config.identity_claim_key not in claims:
            raise JWTDecodeError(f"Missing claim: {config.identity_claim_key}")
        claims.setdefault("type", "access")
        claims.setdefault("fresh", False)
        claims.setdefault("jti", None)
        if csrf_value:
            if "csrf" not in claims:
                raise JWTDecodeError("Missing claim: csrf")
            if not compare_digest(claims["csrf"], csrf_value):
                raise CSRFError("CSRF double submit tokens do not match")
        return claims
