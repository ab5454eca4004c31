# cython: language_level=3
"""A filter description run by libavfilter on one frame: the loaders' filter_desc."""

from spdl.io._status cimport ERR_FILTER, ERR_NOMEM, Status, fail
from spdl.io.includes.libavfilter cimport (
    AV_BUFFERSRC_FLAG_KEEP_REF, AVFilterContext, AVFilterGraph, AVFilterInOut,
    av_buffersink_get_frame, av_buffersrc_add_frame_flags, avfilter_get_by_name,
    avfilter_graph_alloc, avfilter_graph_config, avfilter_graph_create_filter,
    avfilter_graph_free, avfilter_graph_parse_ptr, avfilter_inout_alloc, avfilter_inout_free,
)
from spdl.io.includes.libavutil cimport AVFrame, av_frame_unref, av_strdup

cdef extern from "<stdio.h>":
    int snprintf(char *buf, size_t n, const char *fmt, ...) nogil


cdef int filter_graph_frame(const char *desc, AVFrame *src, AVFrame *out,
                            Status *err) noexcept nogil:
    """Run src through the libavfilter graph desc; the one output frame lands in out."""
    cdef AVFilterGraph *graph = avfilter_graph_alloc()
    cdef AVFilterContext *bsrc = NULL
    cdef AVFilterContext *bsink = NULL
    cdef AVFilterInOut *outputs = avfilter_inout_alloc()
    cdef AVFilterInOut *inputs = avfilter_inout_alloc()
    cdef char args[256]
    cdef int ret = 0
    cdef const char *op = "avfilter_graph_alloc"
    if graph == NULL or outputs == NULL or inputs == NULL:
        ret = -12
    if ret >= 0:
        graph.opaque = err  # the filters' log lines go to this status
        graph.nb_threads = 1
        snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=1/1:pixel_aspect=1/1",
                 src.width, src.height, src.format)
        op = "avfilter_graph_create_filter"
        ret = avfilter_graph_create_filter(&bsrc, avfilter_get_by_name("buffer"), "in", args,
                                           NULL, graph)
    if ret >= 0:
        ret = avfilter_graph_create_filter(&bsink, avfilter_get_by_name("buffersink"), "out",
                                           NULL, NULL, graph)
    if ret >= 0:
        outputs.name = av_strdup("in")
        outputs.filter_ctx = bsrc
        outputs.pad_idx = 0
        outputs.next = NULL
        inputs.name = av_strdup("out")
        inputs.filter_ctx = bsink
        inputs.pad_idx = 0
        inputs.next = NULL
        op = "avfilter_graph_parse_ptr"
        ret = avfilter_graph_parse_ptr(graph, desc, &inputs, &outputs, graph)  # logs to graph's status
    if ret >= 0:
        op = "avfilter_graph_config"
        ret = avfilter_graph_config(graph, NULL)
    if ret >= 0:
        op = "av_buffersrc_add_frame_flags"
        ret = av_buffersrc_add_frame_flags(bsrc, src, AV_BUFFERSRC_FLAG_KEEP_REF)
    if ret >= 0:
        ret = av_buffersrc_add_frame_flags(bsrc, NULL, 0)
    if ret >= 0:
        op = "av_buffersink_get_frame"
        ret = av_buffersink_get_frame(bsink, out)
    avfilter_inout_free(&inputs)
    avfilter_inout_free(&outputs)
    avfilter_graph_free(&graph)
    if ret < 0:
        return fail(err, ERR_FILTER, "filter", op, ret, NULL)
    return 0
