// The two C structs FluxImages hands to image libraries loaded with dlopen, declared here (our own declarations of
// the layouts the libraries document, not their headers) so that the compiler, not hand-counted offsets, lays them
// out. Functions are looked up with dlsym and typed in Swift; only these structs need C layout.
#ifndef FLUX_CIMAGECODECS_H
#define FLUX_CIMAGECODECS_H

#include <stdint.h>

// libpng 1.6's simplified-API control struct `png_image` (png.h, "Simplified API"): the caller zeroes it, sets
// `version` to PNG_IMAGE_VERSION (1), and libpng fills in the rest from the header. `opaque` is libpng's own state
// (NULL when freed); `message` holds the error or warning text, NUL-terminated.
typedef struct {
    void *opaque;
    uint32_t version;
    uint32_t width;
    uint32_t height;
    uint32_t format;
    uint32_t flags;
    uint32_t colormap_entries;
    uint32_t warning_or_error;
    char message[64];
} flux_png_image;

// libwebp's `WebPBitstreamFeatures` (decode.h), filled by WebPGetFeaturesInternal: the canvas size, whether the
// bitstream has alpha or is animated, and lossy (1) / lossless (2) / mixed (0). `pad` is reserved by libwebp.
typedef struct {
    int width;
    int height;
    int has_alpha;
    int has_animation;
    int format;
    uint32_t pad[5];
} flux_webp_features;

#endif
