# The chat page of `cinfer serve` (webui/, docs/WEBUI.md): scripts/build-webui.mjs
# bundles it with marked, DOMPurify and highlight.js from node_modules and
# writes the embedded assets as C arrays into the build dir. Without node or
# node_modules the build still succeeds and embeds a placeholder page.
set(CINFER_WEBUI_DIR ${CMAKE_BINARY_DIR}/webui)
set(CINFER_WEBUI_C ${CINFER_WEBUI_DIR}/webui_assets.c)
find_program(CINFER_NODE node)
set(_webui_libs
  ${PROJECT_SOURCE_DIR}/node_modules/marked/lib/marked.umd.js
  ${PROJECT_SOURCE_DIR}/node_modules/dompurify/dist/purify.min.js
  ${PROJECT_SOURCE_DIR}/node_modules/highlight.js/lib/core.js)
set(_webui_missing "")
if(NOT CINFER_NODE)
  set(_webui_missing "node")
endif()
foreach(f ${_webui_libs})
  if(NOT EXISTS ${f})
    set(_webui_missing "${_webui_missing} ${f}")
  endif()
endforeach()

if(_webui_missing STREQUAL "")
  file(GLOB _webui_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/webui/*)
  add_custom_command(
    OUTPUT ${CINFER_WEBUI_C}
    COMMAND ${CINFER_NODE} ${PROJECT_SOURCE_DIR}/scripts/build-webui.mjs ${CINFER_WEBUI_DIR}
    DEPENDS ${PROJECT_SOURCE_DIR}/scripts/build-webui.mjs ${_webui_sources} ${_webui_libs}
    COMMENT "Bundling the web UI (webui/ -> ${CINFER_WEBUI_C})"
    VERBATIM)
else()
  message(STATUS "web UI: NOT built (missing:${_webui_missing}); `cinfer serve` will answer / with a "
                 "placeholder page. Run scripts/install-deps.sh and re-run cmake to build it.")
  configure_file(${PROJECT_SOURCE_DIR}/src/server/webui_placeholder.c.in ${CINFER_WEBUI_C} COPYONLY)
endif()
target_sources(cinfer PRIVATE ${CINFER_WEBUI_C})
