#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: these typed,
// non-variadic wrappers are what TresorStore's HTTP client uses.

typedef size_t (*tresor_curl_data_cb)(char *buffer, size_t size, size_t nitems, void *userdata);

static inline CURLcode tresor_curl_setopt_long(CURL *h, CURLoption option, long value) {
    return curl_easy_setopt(h, option, value);
}

static inline CURLcode tresor_curl_setopt_off(CURL *h, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(h, option, value);
}

static inline CURLcode tresor_curl_setopt_string(CURL *h, CURLoption option, const char *value) {
    return curl_easy_setopt(h, option, value);
}

static inline CURLcode tresor_curl_setopt_pointer(CURL *h, CURLoption option, void *value) {
    return curl_easy_setopt(h, option, value);
}

static inline CURLcode tresor_curl_setopt_slist(CURL *h, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(h, option, value);
}

static inline CURLcode tresor_curl_setopt_callback(CURL *h, CURLoption option, tresor_curl_data_cb value) {
    return curl_easy_setopt(h, option, value);
}

static inline CURLcode tresor_curl_getinfo_long(CURL *h, CURLINFO info, long *value) {
    return curl_easy_getinfo(h, info, value);
}
