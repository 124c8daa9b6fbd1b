# CMake toolchain for 64-bit Arm Linux (the Grace CPU of a DGX Spark) with Debian's
# crossbuild-essential-arm64 and a sysroot of Debian's arm64 -dev packages, which
# deploy/cross/arm64.sh unpacks. Build tools (protoc, grpc_cpp_plugin, pkg-config) are the
# host's; arm64 programs that CMake or ctest runs (test discovery) go through qemu-aarch64.
# Usage: cmake -DCMAKE_TOOLCHAIN_FILE=deploy/cross/aarch64-linux-gnu.cmake
#              -DSPRITEFORGE_SYSROOT=<dir> ...   (or SPRITEFORGE_SYSROOT in the environment)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# CMake reads this file again for each try_compile; the variable travels with it.
if(NOT SPRITEFORGE_SYSROOT)
  set(SPRITEFORGE_SYSROOT "$ENV{SPRITEFORGE_SYSROOT}")
endif()
if(NOT IS_DIRECTORY "${SPRITEFORGE_SYSROOT}/usr/lib/aarch64-linux-gnu")
  message(FATAL_ERROR "aarch64 toolchain: SPRITEFORGE_SYSROOT='${SPRITEFORGE_SYSROOT}' is not an "
                      "arm64 sysroot (deploy/cross/arm64.sh makes one)")
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES SPRITEFORGE_SYSROOT)

set(CMAKE_SYSROOT "${SPRITEFORGE_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${SPRITEFORGE_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)  # host protoc and grpc_cpp_plugin
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the arm64 .pc files and puts the sysroot before their paths.
set(ENV{PKG_CONFIG_LIBDIR}
    "${SPRITEFORGE_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${SPRITEFORGE_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${SPRITEFORGE_SYSROOT}")

find_program(SPRITEFORGE_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${SPRITEFORGE_QEMU_AARCH64};-L;${SPRITEFORGE_SYSROOT}")
