"""Errors the auth store raises; ``api/errors.py`` maps them to gRPC codes and etcd's strings.

``str(err)`` is etcd's own auth message (``auth: ...``), which is what a client sees
for the few errors etcd 3.5.1 has no gRPC mapping for.
"""


class AuthError(Exception):
    """Base class for auth errors."""

    message = "auth: error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


class RootUserNotExistError(AuthError):
    message = "auth: root user does not exist"


class RootRoleNotExistError(AuthError):
    message = "auth: root user does not have root role"


class UserAlreadyExistError(AuthError):
    message = "auth: user already exists"


class UserEmptyError(AuthError):
    message = "auth: user name is empty"


class UserNotFoundError(AuthError):
    message = "auth: user not found"


class RoleAlreadyExistError(AuthError):
    message = "auth: role already exists"


class RoleNotFoundError(AuthError):
    message = "auth: role not found"


class RoleEmptyError(AuthError):
    message = "auth: role name is empty"


class PermissionNotGivenError(AuthError):
    message = "auth: permission not given"


class AuthFailedError(AuthError):
    message = "auth: authentication failed, invalid user ID or password"


class NoPasswordUserError(AuthError):
    message = "auth: authentication failed, password was given for no password user"


class PermissionDeniedError(AuthError):
    message = "auth: permission denied"


class RoleNotGrantedError(AuthError):
    message = "auth: role is not granted to the user"


class PermissionNotGrantedError(AuthError):
    message = "auth: permission is not granted to the role"


class AuthNotEnabledError(AuthError):
    message = "auth: authentication is not enabled"


class AuthOldRevisionError(AuthError):
    message = "auth: revision in header is old"


class InvalidAuthTokenError(AuthError):
    message = "auth: invalid auth token"


class InvalidAuthMgmtError(AuthError):
    message = "auth: invalid auth management"


class InvalidAuthOptsError(AuthError):
    """``--auth-token`` names an unknown type or has a malformed option."""

    message = "auth: invalid auth options"


class InvalidAuthMethodError(AuthError):
    message = "auth: invalid auth signature method"


class MissingKeyError(AuthError):
    message = "auth: missing key data"


class KeyMismatchError(AuthError):
    message = "auth: public and private keys don't match"


class VerifyOnlyError(AuthError):
    """A JWT provider given only a public key cannot issue tokens."""

    message = "auth: token signing attempted with verify-only key"


class InvalidKeyError(AuthError):
    """A JWT key file that is not a usable PEM key (the text is golang-jwt's)."""

    message = "Invalid Key: Key must be a PEM encoded PKCS1 or PKCS8 key"
