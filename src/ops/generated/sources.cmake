# Sources of the generated provider, included by src/ops/CMakeLists.txt when the compiler layer
# is built: FLAGSTONE_OPS_GENERATED makes the registry call register_generated().
target_sources(flagstone_ops PRIVATE
  generated/gen_common.cc
  generated/map.cc
  generated/math.cc
  generated/elementwise.cc
  generated/binary.cc
  generated/reduction.cc
  generated/rows.cc
  generated/norm.cc
  generated/llm.cc
  generated/flat.cc
  generated/movement.cc
  generated/factory.cc
)
target_link_libraries(flagstone_ops PRIVATE flagstone::compiler)
target_compile_definitions(flagstone_ops PRIVATE FLAGSTONE_OPS_GENERATED=1)
# GCC 12 reports -Wrestrict false positives inside std::string concatenation at -O3 (GCC bug
# 105329); these files build kernel names and keys, so the warning is silenced for them only.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set_source_files_properties(generated/gen_common.cc generated/map.cc generated/elementwise.cc
                              generated/binary.cc generated/reduction.cc generated/rows.cc
                              generated/norm.cc generated/llm.cc generated/movement.cc generated/flat.cc
                              generated/factory.cc
                              PROPERTIES COMPILE_OPTIONS -Wno-restrict)
endif()
