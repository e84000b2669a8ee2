"""A bank ledger with a plain class (no dataclass, no __eq__): instances as arguments and
as results."""

from executors import executor


class Account:
    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance
        self.history = []

    def deposit(self, amount):
        self.balance += amount
        self.history.append(amount)


def apply(account, amounts):
    for amount in amounts:
        account.deposit(amount)
    return account


def richest(accounts):
    return max(accounts, key=lambda account: account.balance).owner


def open_account(owner):
    account = Account(owner)
    account.deposit(1)
    return account


def show(account):
    return f"an Account: {isinstance(account, Account)}, {vars(account)}"


def main():
    with executor() as ex:
        print(show(ex.submit(apply, Account("ana", 10), [5, 20]).result()))
        print(repr(ex.submit(richest, [Account("bo", 3), Account("cy", 9)]).result()))
        print(show(ex.submit(open_account, "dee").result()))


if __name__ == "__main__":
    main()
