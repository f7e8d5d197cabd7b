# Installs headers, libraries, the CLI, a CMake package (find_package(flagstone)) and a
# pkg-config file.
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/flagstone DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/generated/flagstone/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/flagstone)

set(_fs_exported)
foreach(layer runtime compiler ops comm engine)
  if(TARGET flagstone_${layer})
    list(APPEND _fs_exported flagstone_${layer})
    set_target_properties(flagstone_${layer} PROPERTIES EXPORT_NAME ${layer})
  endif()
endforeach()
install(TARGETS ${_fs_exported} flagstone_options EXPORT flagstoneTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT flagstoneTargets NAMESPACE flagstone::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flagstone)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/flagstoneConfig.cmake.in
  ${PROJECT_BINARY_DIR}/flagstoneConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flagstone)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/flagstoneConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/flagstoneConfig.cmake
              ${PROJECT_BINARY_DIR}/flagstoneConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flagstone)

set(FLAGSTONE_PC_LIBS "")
foreach(lib ${_fs_exported})
  string(PREPEND FLAGSTONE_PC_LIBS "-l${lib} ")
endforeach()
file(RELATIVE_PATH FLAGSTONE_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
configure_file(${PROJECT_SOURCE_DIR}/cmake/flagstone.pc.in ${PROJECT_BINARY_DIR}/flagstone.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/flagstone.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
