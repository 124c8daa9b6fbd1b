# What `cmake --install` puts under the prefix: the programs that were built, the engine's
# shared library with the CLIP tokenizer files it falls back on, the example manifests, the
# deployment units and the license.
set(SPRITEFORGE_PROGRAMS spriteforge-coordinator spriteforge spriteforge-worker
    spriteforge-generate spriteforge-bench)
foreach(program IN LISTS SPRITEFORGE_PROGRAMS)
  if(TARGET ${program})
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
if(TARGET spriteforge_engine)
  install(TARGETS spriteforge_engine LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()

set(SPRITEFORGE_SHARE ${CMAKE_INSTALL_DATADIR}/spriteforge)
if(TARGET spriteforge_engine)
  install(FILES worker/engine/data/clip/vocab.json worker/engine/data/clip/merges.txt
          worker/engine/data/clip/README.md DESTINATION ${SPRITEFORGE_SHARE}/clip)
endif()
# The built-in pose sets for openpose control images (every program may expand them).
install(DIRECTORY common/sprite/data/poses/ DESTINATION ${SPRITEFORGE_SHARE}/poses FILES_MATCHING
        PATTERN "*.json")
install(DIRECTORY workflows/ DESTINATION ${SPRITEFORGE_SHARE}/workflows FILES_MATCHING
        PATTERN "*.yaml" PATTERN "*.yml" PATTERN "*.json")
install(DIRECTORY deploy/systemd/ DESTINATION ${SPRITEFORGE_SHARE}/systemd)
install(FILES LICENSE README.md docs/deploy.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Helpers the images, compose and Kubernetes start workers and check their health with.
install(PROGRAMS deploy/docker/worker-run.sh DESTINATION ${CMAKE_INSTALL_BINDIR}
        RENAME spriteforge-worker-run)
install(PROGRAMS deploy/docker/worker-health.sh DESTINATION ${CMAKE_INSTALL_BINDIR}
        RENAME spriteforge-worker-health)
