# The old name of the status funnel (_status.pxd), for modules not yet moved over.
from spdl.io._status cimport (
    ERR_CANCELLED, ERR_CONFIG, ERR_DECODE, ERR_FILTER, ERR_FORMAT, ERR_NOMEM, ERR_NONE, ERR_SOURCE,
    ERR_TOO_LARGE, ErrorInfo, ErrorKind, Status, av_error_string, fail, fail_errno, log_clear,
    log_first_error, log_install, log_saw, make_error, raise_error,
)
