#pragma once

#define GLIA_VERSION_MAJOR 0
#define GLIA_VERSION_MINOR 1
#define GLIA_VERSION_PATCH 0
#define GLIA_VERSION "0.1.0"

namespace glia {
/// The library's version, "major.minor.patch".
inline const char* version() { return GLIA_VERSION; }
}  // namespace glia
