# LETHE_CUDA: AUTO builds the CUDA backend when nvcc is found, ON requires it, OFF skips it.
# Included after the `lethe` target exists: the backend is an OBJECT library (`lethe_cuda`) whose
# objects go into `lethe` itself, so static link order and the install/export stay those of one
# library. Its CUDA libraries are linked as CUDA::* imported targets; the installed package finds
# them again (cmake/LetheConfig.cmake.in).
set(LETHE_HAVE_CUDA OFF)
if(NOT LETHE_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(LETHE_HAVE_CUDA ON)
  elseif(LETHE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LETHE_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or PATH)")
  endif()
endif()
message(STATUS "Lethe: CUDA backend ${LETHE_HAVE_CUDA} (LETHE_CUDA=${LETHE_CUDA})")

if(LETHE_HAVE_CUDA)
  # sm_90 code + compute_90 PTX unless the user chose; never `native` or `all` (CI has no GPU and
  # `all` multiplies compile time).
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "CUDA architectures of the Lethe backend")
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  # CMake 3.25 does not know nvcc's C++20 flag (CUDA_STANDARD follows CXX_STANDARD 20): teach it.
  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()

  find_path(LETHE_CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES cudnn)
  find_library(LETHE_CUDNN_LIBRARY NAMES cudnn HINTS ${CUDAToolkit_LIBRARY_DIR}
    PATHS ${CUDAToolkit_LIBRARY_ROOT}/lib ${CUDAToolkit_LIBRARY_ROOT}/lib64)
  if(NOT LETHE_CUDNN_INCLUDE_DIR OR NOT LETHE_CUDNN_LIBRARY)
    message(FATAL_ERROR "Lethe: the CUDA backend needs cuDNN 9 (cudnn.h, libcudnn); set "
                        "LETHE_CUDNN_INCLUDE_DIR and LETHE_CUDNN_LIBRARY, or configure with -DLETHE_CUDA=OFF")
  endif()
  add_library(Lethe_cudnn INTERFACE IMPORTED)
  set_target_properties(Lethe_cudnn PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${LETHE_CUDNN_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${LETHE_CUDNN_LIBRARY}")
  # Thrust/CUB come with the toolkit (CCCL); host .cpp files that include them need this directory.
  set(LETHE_CCCL_INCLUDE_DIR "${CUDAToolkit_INCLUDE_DIRS}/cccl")

  # A CUDA kernel lives beside its CPU file's folder: ops/cuda/softmax.cu for ops/softmax.cpp,
  # optim/cuda/update_ops.cu for optim/update_ops.cpp.
  file(GLOB LETHE_CUDA_SOURCES CONFIGURE_DEPENDS ops/cuda/*.cu ops/cuda/*.cpp optim/cuda/*.cu
       framework/cuda/*.cu framework/cuda/*.cpp)
  add_library(lethe_cuda OBJECT ${LETHE_CUDA_SOURCES})
  target_include_directories(lethe_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${LETHE_CCCL_INCLUDE_DIR})
  target_link_libraries(lethe_cuda PRIVATE CUDA::cudart CUDA::cublas Lethe_cudnn nlohmann_json::nlohmann_json)
  target_compile_definitions(lethe_cuda PRIVATE LETHE_HAVE_CUDA=1)
  target_compile_options(lethe_cuda PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall>
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)

  target_sources(lethe PRIVATE $<TARGET_OBJECTS:lethe_cuda>)
  target_compile_definitions(lethe PRIVATE LETHE_HAVE_CUDA=1)
  # Imported targets, not the build machine's paths: the installed LetheConfig.cmake finds the
  # toolkit and cuDNN again where the consumer has them (find_dependency(CUDAToolkit)).
  target_link_libraries(lethe PRIVATE CUDA::cudart CUDA::cublas CUDA::cublasLt Lethe_cudnn)
  # NCCL (shipped with the toolkit here) for data-parallel CUDA ranks, bootstrapped through MPI.
  set(LETHE_HAVE_NCCL OFF)
  if(LETHE_HAVE_MPI)
    find_path(LETHE_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
    find_library(LETHE_NCCL_LIBRARY NAMES nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
    if(LETHE_NCCL_INCLUDE_DIR AND LETHE_NCCL_LIBRARY)
      set(LETHE_HAVE_NCCL ON)
      target_include_directories(lethe_cuda PRIVATE ${LETHE_NCCL_INCLUDE_DIR})
      target_compile_definitions(lethe_cuda PRIVATE LETHE_HAVE_NCCL=1)
      target_compile_definitions(lethe PRIVATE LETHE_HAVE_NCCL=1)
      target_link_libraries(lethe PRIVATE ${LETHE_NCCL_LIBRARY})
    endif()
  endif()
  message(STATUS "Lethe: NCCL for data-parallel CUDA ranks ${LETHE_HAVE_NCCL}")
  # The objects reach `lethe` only through target_sources; make sure they are built first.
  add_dependencies(lethe lethe_cuda)
endif()

# The CUDA benchmark calls cuBLAS directly to compare; built only with the backend.
if(LETHE_HAVE_CUDA AND LETHE_BUILD_BENCH)
  find_package(CLI11 CONFIG REQUIRED)
  add_executable(cuda_bench ${CMAKE_CURRENT_SOURCE_DIR}/bench/cuda_bench.cpp)
  target_link_libraries(cuda_bench PRIVATE lethe CUDA::cudart CUDA::cublas CLI11::CLI11)
  set_target_properties(cuda_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
endif()
