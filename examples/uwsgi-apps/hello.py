# The WSGI app of hello.ini: says hello, and which process and uid answered.
import os


def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    body = 'hello from %s (pid %d, uid %d)\n' % (
        os.environ.get('APP_NAME', '?'), os.getpid(), os.getuid())
    return [body.encode()]
