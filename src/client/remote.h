/*
 * remote.h — the engine's view of a remote OpenAI-compatible endpoint:
 * cinfer_model_open_remote() and cinfer_chat() on such a model land here.
 */
#ifndef CINFER_REMOTE_H
#define CINFER_REMOTE_H

#include <jansson.h>

#include "cinfer.h"

typedef struct ci_remote ci_remote;

ci_remote *ci_remote_open(const cinfer_remote_options *o, cinfer_error *err);
void ci_remote_close(ci_remote *r);
/* One chat completion with `messages` (an OpenAI messages array, only read);
 * streams through o->on_delta when set; fills `out` like a local turn. */
int ci_remote_chat(ci_remote *r, const json_t *messages, const cinfer_gen_options *o, cinfer_result *out,
                   cinfer_error *err);

#endif
