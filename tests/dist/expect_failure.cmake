# Runs dist_check MODE on 2 ranks and passes when the job exits non-zero within 60 s (and, for a
# hang, rank 0 reported the collective's timeout).
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${MPIRUN} -np 2 --oversubscribe --bind-to none ${PROGRAM} ${MODE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
string(TIMESTAMP t1 "%s")
math(EXPR took "${t1} - ${t0}")
message("exit: ${rc} after ${took} s\n${out}\n${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the job exited 0 although rank 1 stopped")
endif()
if(rc MATCHES "timeout")
  message(FATAL_ERROR "the job did not end within 60 s")
endif()
if(MODE STREQUAL "hang" AND NOT err MATCHES "did not complete within")
  message(FATAL_ERROR "rank 0 did not report the collective's timeout")
endif()
