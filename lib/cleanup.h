/* Scope-exit cleanup for the library handles cpipe holds most: a cJSON
 * tree, a curl easy handle, header list and URL handle. As util.h's
 * cleanup_free: `cleanup_cjson cJSON *doc = cJSON_Parse(text);` deletes
 * the tree when `doc` goes out of scope (NULL is fine); hand it on by
 * setting the variable to NULL after taking it. */
#ifndef CPIPE_LIB_CLEANUP_H
#define CPIPE_LIB_CLEANUP_H

#include <cjson/cJSON.h>
#include <curl/curl.h>

static inline void cleanup_cjson_fn(cJSON **p)
{
	cJSON_Delete(*p);
}

static inline void cleanup_curl_fn(CURL **p)
{
	if (*p)
		curl_easy_cleanup(*p);
}

static inline void cleanup_curl_slist_fn(struct curl_slist **p)
{
	curl_slist_free_all(*p);
}

static inline void cleanup_curlu_fn(CURLU **p)
{
	if (*p)
		curl_url_cleanup(*p);
}

#define cleanup_cjson      __attribute__((cleanup(cleanup_cjson_fn)))
#define cleanup_curl       __attribute__((cleanup(cleanup_curl_fn)))
#define cleanup_curl_slist __attribute__((cleanup(cleanup_curl_slist_fn)))
#define cleanup_curlu      __attribute__((cleanup(cleanup_curlu_fn)))

#endif
