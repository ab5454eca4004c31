from spdl.io._status cimport Status
from spdl.io.includes.libavutil cimport AVFrame

cdef int filter_graph_frame(const char *desc, AVFrame *src, AVFrame *out,
                            Status *err) noexcept nogil
