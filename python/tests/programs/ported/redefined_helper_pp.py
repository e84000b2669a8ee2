"""One pp server; a helper redefined between submits: each job runs the helper as it was
when the job was submitted, named in depfuncs or found by wasp."""

from executors import ncpus, pp, ppservers, secret_file


def tax(amount):
    return amount * 0.20


def invoice(amount):
    return round(amount + tax(amount), 2)


job_server = pp.Server(ncpus, ppservers=ppservers, secret_file=secret_file)
print("standard, depfuncs named:", job_server.submit(invoice, (100.0,), (tax,))())
print("standard, depfuncs found:", job_server.submit(invoice, (100.0,))())


def tax(amount):
    return amount * 0.05


print("reduced, depfuncs named:", job_server.submit(invoice, (100.0,), (tax,))())
print("reduced, depfuncs found:", job_server.submit(invoice, (100.0,))())
job_server.destroy()
