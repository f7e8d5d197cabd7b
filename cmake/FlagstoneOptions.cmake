# Warning and sanitizer flags shared by every Flagstone target (through flagstone_options).
add_library(flagstone_options INTERFACE)
target_compile_options(flagstone_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-missing-field-initializers>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${FLAGSTONE_WERROR}>>:-Werror>)
if(FLAGSTONE_SANITIZE)
  set(_fs_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_compile_options(flagstone_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_fs_san}>)
  target_link_options(flagstone_options INTERFACE -fsanitize=address,undefined)
endif()
