from spdl.io._error cimport ErrorInfo

cdef int jpeg_check_structure(const unsigned char *d, int n, ErrorInfo *err) noexcept nogil
cdef int gif_check_first_frame(const unsigned char *d, int n, ErrorInfo *err) noexcept nogil
