"""One pp server that reuses its interpreters (reuse_instances=True, for trusted code); a
helper redefined between submits: each job still runs the helper as it was when the job
was submitted."""

from executors import ncpus, pp, ppservers, secret_file


def tax(amount):
    return amount * 0.20


def invoice(amount):
    return round(amount + tax(amount), 2)


job_server = pp.Server(ncpus, ppservers=ppservers, secret_file=secret_file, reuse_instances=True)
for _ in range(3):
    print("standard, depfuncs named:", job_server.submit(invoice, (100.0,), (tax,))())
    print("standard, depfuncs found:", job_server.submit(invoice, (100.0,))())


def tax(amount):
    return amount * 0.05


for _ in range(3):
    print("reduced, depfuncs named:", job_server.submit(invoice, (100.0,), (tax,))())
    print("reduced, depfuncs found:", job_server.submit(invoice, (100.0,))())
job_server.destroy()
