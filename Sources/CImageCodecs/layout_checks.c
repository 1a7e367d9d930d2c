// The layouts libpng and libwebp document for LP64 (x86_64, arm64): checked at build time, so a wrong declaration in
// CImageCodecs.h fails the build instead of corrupting memory. (SwiftPM also needs one source file in a C target.)
#include <stddef.h>
#include "CImageCodecs.h"

_Static_assert(offsetof(flux_png_image, version) == sizeof(void *), "png_image.version follows the opaque pointer");
_Static_assert(offsetof(flux_png_image, message) == sizeof(void *) + 7 * 4, "png_image: seven png_uint_32 fields");
_Static_assert(sizeof(flux_webp_features) == 40, "WebPBitstreamFeatures: five ints and five uint32 of padding");
