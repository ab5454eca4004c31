# Declarations from libavfilter, one extern block per header.
from spdl.io.includes.libavutil cimport AVFrame


cdef extern from "libavfilter/avfilter.h" nogil:
    ctypedef struct AVFilter:
        const char *name

    ctypedef struct AVFilterContext:
        const AVFilter *filter
        char *name

    ctypedef struct AVFilterGraph:
        int nb_threads
        void *opaque                # the caller's: our spdl_status (csrc/status.h)

    ctypedef struct AVFilterInOut:
        char *name
        AVFilterContext *filter_ctx
        int pad_idx
        AVFilterInOut *next

    const AVFilter *avfilter_get_by_name(const char *name)
    AVFilterGraph *avfilter_graph_alloc()
    void avfilter_graph_free(AVFilterGraph **graph)
    int avfilter_graph_create_filter(AVFilterContext **filt_ctx, const AVFilter *filt,
                                     const char *name, const char *args, void *opaque,
                                     AVFilterGraph *graph_ctx)
    int avfilter_graph_parse_ptr(AVFilterGraph *graph, const char *filters,
                                 AVFilterInOut **inputs, AVFilterInOut **outputs,
                                 void *log_ctx)
    int avfilter_graph_config(AVFilterGraph *graphctx, void *log_ctx)
    AVFilterInOut *avfilter_inout_alloc()
    void avfilter_inout_free(AVFilterInOut **inout)
    unsigned avfilter_version()


cdef extern from "libavfilter/buffersrc.h" nogil:
    int AV_BUFFERSRC_FLAG_KEEP_REF
    int av_buffersrc_add_frame_flags(AVFilterContext *buffer_src, AVFrame *frame, int flags)


cdef extern from "libavfilter/buffersink.h" nogil:
    int av_buffersink_get_frame(AVFilterContext *ctx, AVFrame *frame)
