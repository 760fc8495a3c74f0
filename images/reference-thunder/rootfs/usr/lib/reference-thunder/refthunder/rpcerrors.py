"""Thunder core error codes and how each API generation turns them into JSON-RPC errors.

Codes: Source/core/Portability.h (R4.4) and Source/core/Errors.h (R5). JSON-RPC mapping:
Core::JSONRPC::Message::Info::SetError in Source/core/JSONRPC.h, R5 as of R5.3.0 (codes offset by
-31000, texts like "The service is not active.") and R4.4.3 (raw codes). Codes without a special
case get the enumerator's name as message, as ErrorToString() does.
"""

from __future__ import annotations

R5 = "R5"
R44 = "R4.4"

ERROR_NONE = 0
ERROR_GENERAL = 1
ERROR_UNAVAILABLE = 2
ERROR_ILLEGAL_STATE = 5
ERROR_OPENING_FAILED = 6
ERROR_TIMEDOUT = 11
ERROR_INPROGRESS = 12
ERROR_INCORRECT_URL = 15
ERROR_CLOSING_FAILED = 19
ERROR_UNKNOWN_KEY = 22
ERROR_INCOMPLETE_CONFIG = 23
ERROR_PRIVILIGED_REQUEST = 24
ERROR_BAD_REQUEST = 30
ERROR_PENDING_CONDITIONS = 31
ERROR_INVALID_SIGNATURE = 38
ERROR_INVALID_DESIGNATOR = 41
ERROR_NOT_EXIST = 43
ERROR_NOT_SUPPORTED = 44
ERROR_HIBERNATED = 46
ERROR_PARSE_FAILURE = 50
ERROR_INVALID_ENVELOPPE = 52
ERROR_UNKNOWN_METHOD = 53
ERROR_INVALID_PARAMETER = 54

# Enumerator names in code order (ERROR_CODES of Portability.h/Errors.h): ErrorToString().
# fmt: off
_NAMES = (
    "NONE", "GENERAL", "UNAVAILABLE", "ASYNC_FAILED", "ASYNC_ABORTED", "ILLEGAL_STATE",
    "OPENING_FAILED", "ACCEPT_FAILED", "PENDING_SHUTDOWN", "ALREADY_CONNECTED",
    "CONNECTION_CLOSED", "TIMEDOUT", "INPROGRESS", "COULD_NOT_SET_ADDRESS", "INCORRECT_HASH",
    "INCORRECT_URL", "INVALID_INPUT_LENGTH", "DESTRUCTION_SUCCEEDED", "DESTRUCTION_FAILED",
    "CLOSING_FAILED", "PROCESS_TERMINATED", "PROCESS_KILLED", "UNKNOWN_KEY", "INCOMPLETE_CONFIG",
    "PRIVILIGED_REQUEST", "RPC_CALL_FAILED", "UNREACHABLE_NETWORK", "REQUEST_SUBMITTED",
    "UNKNOWN_TABLE", "DUPLICATE_KEY", "BAD_REQUEST", "PENDING_CONDITIONS", "SURFACE_UNAVAILABLE",
    "PLAYER_UNAVAILABLE", "FIRST_RESOURCE_NOT_FOUND", "SECOND_RESOURCE_NOT_FOUND",
    "ALREADY_RELEASED", "NEGATIVE_ACKNOWLEDGE", "INVALID_SIGNATURE", "READ_ERROR", "WRITE_ERROR",
    "INVALID_DESIGNATOR", "UNAUTHENTICATED", "NOT_EXIST", "NOT_SUPPORTED", "INVALID_RANGE",
    "HIBERNATED", "INPROC", "FAILED_REGISTERED", "FAILED_UNREGISTERED", "PARSE_FAILURE",
    "PRIVILIGED_DEFERRED", "INVALID_ENVELOPPE", "UNKNOWN_METHOD", "INVALID_PARAMETER",
    "INTERNAL_JSONRPC", "PARSING_ENVELOPPE", "COMPOSIT_OBJECT", "ABORTED",
)
# fmt: on

APPLICATION_ERROR_CODE_BASE = -31000

# R5.3.0 SetError(): special cases, everything else is -31000 - code with the enumerator name.
_R5_SPECIAL = {
    55: (-32603, "Unknown JSON-RPC error."),
    ERROR_INVALID_ENVELOPPE: (-32600, "Invalid request."),
    ERROR_INVALID_PARAMETER: (-32602, "Invalid parameters."),
    ERROR_UNKNOWN_METHOD: (-32601, "Unknown method."),
    ERROR_PRIVILIGED_REQUEST: (-32604, "Method invocation not allowed."),
    51: (-32604, "Method invocation is deferred, currently not allowed."),
    ERROR_TIMEDOUT: (-32000, "Call timed out."),
    56: (-32700, "Parsing of the parameters failed"),
    ERROR_NOT_EXIST: (-31043, "The service is not available."),
    ERROR_INVALID_SIGNATURE: (-31038, "Requested version is not supported."),
    ERROR_INCORRECT_URL: (-31015, "Designator is invalid."),
    ERROR_ILLEGAL_STATE: (-31005, "The service is in an illegal state."),
    48: (-31048, "Registration failed."),
    49: (-31049, "Unregister failed."),
    ERROR_HIBERNATED: (-31046, "The service is hibernated."),
    ERROR_UNAVAILABLE: (-31002, "The service is not active."),
    ERROR_NOT_SUPPORTED: (-31044, "The operation is not supported."),
}

# R4.4.3 SetError(): special cases, everything else is the raw code with the enumerator name.
_R44_SPECIAL = {
    ERROR_INVALID_DESIGNATOR: (-32600, "Destined invoke failed."),
    ERROR_UNKNOWN_METHOD: (-32601, "Unknown method."),
    ERROR_INVALID_SIGNATURE: (-32602, "Requested version is not supported."),
    ERROR_BAD_REQUEST: (-32603, "Could not access requested service"),
    ERROR_PRIVILIGED_REQUEST: (-32604, "method invocation not allowed."),
    51: (-32604, "method invokation is deferred, Currently not allowed."),
    ERROR_TIMEDOUT: (-32000, "Call timed out."),
    45: (45, "Requested version is not supported."),
    ERROR_INCORRECT_URL: (ERROR_INCORRECT_URL, "Designator is invalid."),
    ERROR_ILLEGAL_STATE: (ERROR_ILLEGAL_STATE, "The service is in an illegal state!!!."),
    ERROR_HIBERNATED: (ERROR_HIBERNATED, "The service is in an Hibernated state!!!."),
}


class ThunderError(Exception):
    """A Thunder core error code, optionally with the text real Thunder puts in its place.

    `data` is reference-only: the reason behind a failure, sent as error.data (a member real
    Thunder's error object has but leaves out); real Thunder only writes it to its log.
    """

    def __init__(self, code: int, text: str | None = None, data: str | None = None) -> None:
        super().__init__(f"{error_name(code)}: {data or text or ''}")
        self.code = code
        self.text = text
        self.data = data


def error_name(code: int) -> str:
    return f"ERROR_{_NAMES[code]}" if 0 <= code < len(_NAMES) else f"Undefined error {code}"


def jsonrpc_error(generation: str, error: ThunderError) -> dict:
    """The JSON-RPC `error` object real Thunder of `generation` would send for `error`."""
    special = _R5_SPECIAL if generation == R5 else _R44_SPECIAL
    if error.code in special:
        code, message = special[error.code]
    elif generation == R5:
        code, message = APPLICATION_ERROR_CODE_BASE - error.code, error_name(error.code)
    else:
        code, message = error.code, error_name(error.code)
    result: dict = {"code": code, "message": error.text if error.text is not None else message}
    if error.data:
        result["data"] = error.data
    return result
