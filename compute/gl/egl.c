#include <stdio.h>
#include <string.h>
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include "egl.h"

static void append(swav_egl *e, const char *what) {
	size_t n = strlen(e->err);
	snprintf(e->err + n, sizeof e->err - n, "%s%s (EGL error 0x%04x)", n ? "; " : "", what, eglGetError());
}

static int has_ext(const char *list, const char *ext) {
	if (!list) return 0;
	size_t n = strlen(ext);
	for (const char *p = list; (p = strstr(p, ext)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
	return 0;
}

// try_display initializes dpy and makes the context on it.
static int try_display(swav_egl *e, EGLDisplay dpy, const char *platform, int gles, int major, int minor) {
	if (dpy == EGL_NO_DISPLAY) return -1;
	EGLint vmaj, vmin;
	if (!eglInitialize(dpy, &vmaj, &vmin)) {
		append(e, platform);
		return -1;
	}
	e->displays++;
	if (!eglBindAPI(gles ? EGL_OPENGL_ES_API : EGL_OPENGL_API)) {
		append(e, "eglBindAPI");
		eglTerminate(dpy);
		return -1;
	}
	EGLint cfgAttr[] = {EGL_RENDERABLE_TYPE, gles ? EGL_OPENGL_ES3_BIT : EGL_OPENGL_BIT, EGL_NONE};
	EGLConfig cfg = 0;
	EGLint n = 0;
	if (!eglChooseConfig(dpy, cfgAttr, &cfg, 1, &n) || n == 0) cfg = 0; // EGL_KHR_no_config_context
	EGLint ctxAttr[] = {
		EGL_CONTEXT_MAJOR_VERSION, major, EGL_CONTEXT_MINOR_VERSION, minor,
		gles ? EGL_NONE : EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
		EGL_NONE};
	EGLContext ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, ctxAttr);
	if (ctx == EGL_NO_CONTEXT) {
		char what[96];
		snprintf(what, sizeof what, "%s: no %s %d.%d context", platform, gles ? "OpenGL ES" : "OpenGL core", major, minor);
		append(e, what);
		eglTerminate(dpy);
		return -1;
	}
	if (!eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx)) {
		append(e, "eglMakeCurrent without a surface");
		eglDestroyContext(dpy, ctx);
		eglTerminate(dpy);
		return -1;
	}
	e->dpy = dpy;
	e->ctx = ctx;
	e->platform = platform;
	return 0;
}

int swav_egl_open(swav_egl *e, int gles, int major, int minor, int mask) {
	memset(e, 0, sizeof *e);
	const char *client = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS);
	PFNEGLGETPLATFORMDISPLAYEXTPROC getPlatformDisplay =
		(PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
	if ((mask & SWAV_EGL_DEVICE) && getPlatformDisplay && has_ext(client, "EGL_EXT_platform_device")) {
		PFNEGLQUERYDEVICESEXTPROC queryDevices = (PFNEGLQUERYDEVICESEXTPROC)eglGetProcAddress("eglQueryDevicesEXT");
		EGLDeviceEXT devs[16];
		EGLint n = 0;
		if (queryDevices && queryDevices(16, devs, &n)) {
			for (EGLint i = 0; i < n; i++)
				if (try_display(e, getPlatformDisplay(EGL_PLATFORM_DEVICE_EXT, devs[i], NULL), "device", gles, major, minor) == 0)
					return 0;
		}
	}
	if ((mask & SWAV_EGL_SURFACELESS) && getPlatformDisplay && has_ext(client, "EGL_MESA_platform_surfaceless") &&
	    try_display(e, getPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL), "surfaceless", gles, major, minor) == 0)
		return 0;
	if ((mask & SWAV_EGL_DEFAULT) && try_display(e, eglGetDisplay(EGL_DEFAULT_DISPLAY), "default", gles, major, minor) == 0) return 0;
	if (!e->err[0]) snprintf(e->err, sizeof e->err, "no EGL display could be opened");
	return -1;
}

int swav_egl_make_current(swav_egl *e) {
	return eglMakeCurrent(e->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, e->ctx) ? 0 : -1;
}

void swav_egl_close(swav_egl *e) {
	if (e->dpy == EGL_NO_DISPLAY || e->dpy == 0) return;
	eglMakeCurrent(e->dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
	if (e->ctx) eglDestroyContext(e->dpy, e->ctx);
	eglTerminate(e->dpy);
	e->dpy = 0;
	e->ctx = 0;
}
