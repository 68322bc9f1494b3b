# Every external dependency, each found through pkg-config or a CMake find module.
# A missing one stops configure with the Debian package that provides it.
find_package(PkgConfig)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config (or run scripts/install-deps.sh)")
endif()

function(pvlm_require_pkg target module debpkg)
  pkg_check_modules(${target} IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "Missing dependency '${module}': apt-get install ${debpkg} (or run scripts/install-deps.sh)")
  endif()
  add_library(pvlm::${target} ALIAS PkgConfig::${target})
endfunction()

pvlm_require_pkg(openblas openblas      libopenblas-openmp-dev)
pvlm_require_pkg(lmdb     lmdb          liblmdb-dev)
pvlm_require_pkg(zstd     libzstd       libzstd-dev)
pvlm_require_pkg(curl     libcurl       libcurl4-openssl-dev)
pvlm_require_pkg(turbojpeg libturbojpeg libturbojpeg0-dev)
pvlm_require_pkg(png      libpng        libpng-dev)
pvlm_require_pkg(jansson  jansson       libjansson-dev)
pvlm_require_pkg(xxhash   libxxhash     libxxhash-dev)
pvlm_require_pkg(zlib     zlib          zlib1g-dev)
pvlm_require_pkg(archive  libarchive    libarchive-dev)

# oneDNN (libdnnl-dev) runs the bf16 matrix products of --precision bf16 (model/matmul.c). Optional: a
# build without it works, and --precision bf16 then fails saying so.
find_path(PVLM_DNNL_INCLUDE oneapi/dnnl/dnnl.h)
find_library(PVLM_DNNL_LIB dnnl)
add_library(pvlm_dnnl INTERFACE)
add_library(pvlm::dnnl ALIAS pvlm_dnnl)
if(PVLM_DNNL_INCLUDE AND PVLM_DNNL_LIB)
  target_include_directories(pvlm_dnnl INTERFACE ${PVLM_DNNL_INCLUDE})
  target_link_libraries(pvlm_dnnl INTERFACE ${PVLM_DNNL_LIB})
  target_compile_definitions(pvlm_dnnl INTERFACE PVLM_HAVE_DNNL=1)
else()
  message(WARNING "oneDNN not found: --precision bf16 will be unavailable (apt-get install libdnnl-dev)")
endif()

find_package(MPI COMPONENTS C)
if(NOT MPI_C_FOUND)
  message(FATAL_ERROR "MPI not found: apt-get install libopenmpi-dev openmpi-bin")
endif()
find_package(Threads REQUIRED)
if(PVLM_OPENMP)
  find_package(OpenMP COMPONENTS C)
  if(NOT OpenMP_C_FOUND)
    message(FATAL_ERROR "OpenMP not found (gcc ships it: apt-get install gcc), or configure with -DPVLM_OPENMP=OFF")
  endif()
endif()

# Tests and the reference implementations use Debian's python3 (python3-torch lives there),
# never a python3 from another prefix that happens to be first on PATH.
find_program(PVLM_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT PVLM_PYTHON)
  find_program(PVLM_PYTHON NAMES python3)
endif()
find_program(PVLM_MPIEXEC NAMES mpirun mpiexec HINTS ${MPI_C_COMPILER_DIRS})

# pvlm_library(NAME DEPS...): a static library of every .c file in the calling
# folder (globbed, so adding a module needs no edit here), linked to DEPS.
function(pvlm_library name)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  if(srcs)
    add_library(${name} STATIC ${srcs})
    target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR})
    target_link_libraries(${name} PUBLIC ${ARGN})
  else()
    add_library(${name} INTERFACE)
    target_link_libraries(${name} INTERFACE ${ARGN})
  endif()
endfunction()
