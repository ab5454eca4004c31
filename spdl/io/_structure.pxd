from spdl.io._error cimport ErrorInfo

cdef size_t jpeg_skip_entropy(const unsigned char *d, size_t n, size_t pos) noexcept nogil
cdef int jpeg_check_structure(const unsigned char *d, int n, ErrorInfo *err) noexcept nogil
cdef int gif_check_first_frame(const unsigned char *d, int n, ErrorInfo *err) noexcept nogil
