#include <EGL/egl.h>

// swav_egl is a headless EGL context and how it was made.
typedef struct {
	EGLDisplay dpy;
	EGLContext ctx;
	const char *platform; // "device", "surfaceless" or "default"
	int displays;         // displays that initialized, with or without the context asked for
	char err[512];
} swav_egl;

// Platforms, as a bit mask of those to try.
#define SWAV_EGL_DEVICE 1
#define SWAV_EGL_SURFACELESS 2
#define SWAV_EGL_DEFAULT 4

// swav_egl_open makes a context with no window system: OpenGL major.minor
// core (gles == 0) or OpenGL ES major.minor (gles != 0). Of the platforms
// in mask it tries EGL's device platform, then Mesa's surfaceless
// platform, then the default display. It returns 0 on success; on failure
// e->err says why.
int swav_egl_open(swav_egl *e, int gles, int major, int minor, int mask);
int swav_egl_make_current(swav_egl *e);
void swav_egl_close(swav_egl *e);
