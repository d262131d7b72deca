// headnet/version.hpp: the library's version (kept equal to the project version in CMakeLists.txt).
#pragma once

#define HEADNET_VERSION_MAJOR 0
#define HEADNET_VERSION_MINOR 1
#define HEADNET_VERSION_PATCH 0
#define HEADNET_VERSION_STRING "0.1.0"
