# gossip/ for operations: members' software versions (a trailing field),
# entries and messages with fewer or more fields, and the membership saved
# and restored across a restart.
if(TARGET kvgossip AND TARGET kvring)
  kv_test(test_gossip_members
          SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/test_gossip_members.c
          LIBS kvgossip TIMEOUT 60 LABELS "unit;quick")
endif()
