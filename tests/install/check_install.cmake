# Script run by ctest: install, configure+build+run the consumer project, then compile the same
# source with the flags pkg-config gives. Any failing step fails the test with its output.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run_step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

run_step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run_step("configure consumer" ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/consumer
         -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX}
         "-DCMAKE_CXX_FLAGS=${CONSUMER_FLAGS}")
run_step("build consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
run_step("run consumer" ${WORK_DIR}/consumer/consumer)
if(NOT step_output MATCHES "consumer ok: 6 elements")
  message(FATAL_ERROR "consumer printed unexpected output: ${step_output}")
endif()

# pkg-config, reading the installed .pc file.
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig:${prefix}/lib64/pkgconfig)
execute_process(COMMAND pkg-config --cflags --libs flagstone RESULT_VARIABLE rc
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not know flagstone")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
separate_arguments(consumer_flags UNIX_COMMAND "${CONSUMER_FLAGS}")
run_step("compile with pkg-config flags" ${CXX} ${SOURCE_DIR}/main.cc ${flags} ${consumer_flags}
         -Wl,-rpath,${prefix}/lib -o ${WORK_DIR}/consumer_pc)
run_step("run pkg-config consumer" ${WORK_DIR}/consumer_pc)
if(NOT step_output MATCHES "consumer ok: 6 elements")
  message(FATAL_ERROR "pkg-config consumer printed unexpected output: ${step_output}")
endif()
message(STATUS "install check passed")
