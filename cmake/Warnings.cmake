# One interface target carries the project's warning and sanitizer flags; every target of the
# project links it, nothing is set globally.
add_library(mxguard_warnings INTERFACE)
target_compile_options(mxguard_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough
  $<$<BOOL:${MXGUARD_WERROR}>:-Werror>)

add_library(mxguard_sanitizers INTERFACE)
if(MXGUARD_SANITIZE)
  target_compile_options(mxguard_sanitizers INTERFACE
    -fsanitize=${MXGUARD_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(mxguard_sanitizers INTERFACE -fsanitize=${MXGUARD_SANITIZE})
  # GCC's -Wmaybe-uninitialized reports false positives inside libstdc++ when the sanitizers'
  # instrumentation changes inlining; the plain -Werror build still checks it.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(mxguard_sanitizers INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()
