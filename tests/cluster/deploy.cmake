# The deployment files under deploy/ (Kubernetes manifests, Dockerfile,
# systemd unit) checked statically and against kvorumd, and the container's
# entry point run for real (tests/deploy/test_deploy.py).
set(KV_DEPLOY_ARGS "")
if(TARGET kvorumd)
  list(APPEND KV_DEPLOY_ARGS --kvorumd $<TARGET_FILE:kvorumd>)
endif()
if(TARGET kvorum_cli)
  list(APPEND KV_DEPLOY_ARGS --cli $<TARGET_FILE:kvorum_cli>)
endif()
if(TARGET kvorum-bench)
  list(APPEND KV_DEPLOY_ARGS --bench $<TARGET_FILE:kvorum-bench>)
endif()
add_test(NAME deploy_manifests
         COMMAND ${KV_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/deploy/test_deploy.py
                 ${KV_DEPLOY_ARGS})
set_tests_properties(deploy_manifests PROPERTIES TIMEOUT 180
                     LABELS "unit;quick")
